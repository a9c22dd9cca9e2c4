import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { bitfit, defineSpec, layerNormTuning, lora, select, sequenceClassification } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { compileForTest, int64Matrix } from "../../helpers/artifacts";
import { PADDED_IDS, PADDED_MASK, causalLmBatch } from "../../helpers/batches";
import { centralDifferenceChecks, changedParams, gradientMismatches, uniformValues } from "../../helpers/gradients";
import { removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");

function batchFor(classification: boolean): Record<string, ort.Tensor> {
  if (!classification) return causalLmBatch(PADDED_IDS, PADDED_MASK);
  return {
    input_ids: int64Matrix(PADDED_IDS),
    attention_mask: int64Matrix(PADDED_MASK),
    token_type_ids: int64Matrix(PADDED_IDS.map((row) => row.map(() => 0))),
    labels: new ort.Tensor("int64", BigInt64Array.of(1n, 0n), [2]),
  };
}

const CASES: [string, Spec, boolean][] = [
  ["gpt2-tiny-op14.onnx", defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v", "mlp.down"), rank: 2 })] }), false],
  ["gpt2-tiny-op17.onnx", defineSpec({ methods: [lora({ targets: select.allLinear(), rank: 2, bias: "lora_only" })] }), false],
  ["llama-tiny.onnx", defineSpec({ methods: [lora({ targets: select.allLinear(), rank: 2, train: select.path("layers.1.mlp_norm") })] }), false],
  ["gpt2-tiny-op17.onnx", defineSpec({ methods: [bitfit(), layerNormTuning()] }), false],
  ["gpt2-tiny-op17.onnx", defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 2, gate: true })] }), false],
  ["llama-tiny.onnx", defineSpec({ methods: [lora({ targets: select.role("attn.q", "mlp.down"), rank: 2, gate: true })] }), false],
  ["bert-tiny-op14.onnx", defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 2 })], train: { loss: sequenceClassification({ classes: 2 }) } }), true],
  ["bert-tiny-op17.onnx", defineSpec({ methods: [lora({ targets: select.allLinear(), rank: 2, bias: "all" })], train: { loss: sequenceClassification({ classes: 2 }) } }), true],
];

describe("whole-graph gradients", () => {
  test.each(CASES)("%s matches central differences (case %#)", async (fixture, spec, classification) => {
    const artifacts = compileForTest(path.join(FIXTURES, fixture), spec);
    const names = artifacts.manifest.parameters.map((parameter) => parameter.name);
    // B starts at zero; a non-zero B makes every LoRA gradient non-zero.
    const params = changedParams(artifacts.params, names, (name, values, i) => (name.endsWith("lora_B") ? uniformValues(values.length, 17 + i, 0.1) : undefined));
    const { grads, checks } = await centralDifferenceChecks(artifacts, params, batchFor(classification));
    // Measured differences stay below 1e-4; 2e-4 plus 1% leaves room for other machines' rounding.
    expect(gradientMismatches(checks, 2e-4, 0.01)).toEqual([]);
    expect(checks.length).toBeGreaterThan(6);
    // The gradients are not all zero, so the check means something.
    expect(Object.values(grads).some((tensor) => (tensor.data as Float32Array).some((value) => Math.abs(value) > 1e-4))).toBe(true);
  });
});
