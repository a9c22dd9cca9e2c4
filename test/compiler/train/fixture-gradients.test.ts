import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { bitfit, defineSpec, layerNormTuning, lora, select, sequenceClassification } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { compileForTest, int64Matrix } from "../../helpers/artifacts";
import { removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const IDS = [
  [3, 14, 15, 92, 65, 35],
  [8, 97, 93, 23, 0, 0],
];
const MASK = [
  [1, 1, 1, 1, 1, 1],
  [1, 1, 1, 1, 0, 0],
];

function batchFor(classification: boolean): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = { input_ids: int64Matrix(IDS), attention_mask: int64Matrix(MASK) };
  if (classification) {
    feeds.token_type_ids = int64Matrix(IDS.map((row) => row.map(() => 0)));
    feeds.labels = new ort.Tensor("int64", BigInt64Array.of(1n, 0n), [2]);
  } else {
    feeds.labels = int64Matrix(IDS.map((row, b) => row.map((id, t) => (MASK[b][t] ? id : -100))));
  }
  return feeds;
}

/** Deterministic values in [-amplitude, amplitude), so B is non-zero and A's gradient is too. */
function values(size: number, seed: number, amplitude: number): Float32Array {
  let state = seed;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32 - 0.5) * 2 * amplitude;
  });
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
    const params: Record<string, ort.Tensor> = {};
    artifacts.manifest.parameters.forEach((parameter, i) => {
      const size = parameter.shape.reduce((a, b) => a * b, 1);
      const base = artifacts.params[parameter.name].data as Float32Array;
      // B starts at zero; a non-zero B makes every LoRA gradient non-zero.
      params[parameter.name] = new ort.Tensor("float32", parameter.name.endsWith("lora_B") ? values(size, 17 + i, 0.1) : Float32Array.from(base), parameter.shape);
    });
    const batch = batchFor(classification);
    const grads = await (await artifacts.session("grad")).run({ ...batch, ...params });
    const evaluate = await artifacts.session("eval");
    const lossWith = async (name: string, index: number, delta: number): Promise<number> => {
      const changed = Float32Array.from(params[name].data as Float32Array);
      changed[index] += delta;
      const outputs = await evaluate.run({ ...batch, ...params, [name]: new ort.Tensor("float32", changed, params[name].dims) });
      return outputs.loss.data[0] as number;
    };

    const h = 1e-2;
    let checked = 0;
    for (const parameter of artifacts.manifest.parameters) {
      const grad = grads[`${parameter.name}.grad`].data as Float32Array;
      const size = grad.length;
      for (const index of [0, Math.floor(size / 2), size - 1]) {
        // The five-point stencil's truncation error is O(h⁴), so a step large enough to keep float32
        // rounding small (about 5e-7 of loss noise, times 18 / 12h) still gives an accurate slope.
        const [plus2, plus1, minus1, minus2] = await Promise.all([2 * h, h, -h, -2 * h].map((delta) => lossWith(parameter.name, index, delta)));
        const slope = (-plus2 + 8 * plus1 - 8 * minus1 + minus2) / (12 * h);
        // Measured differences stay below 1e-4; 2e-4 plus 1% leaves room for other machines' rounding.
        expect(Math.abs(grad[index] - slope)).toBeLessThan(2e-4 + 0.01 * Math.abs(slope));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(6);
    // The gradients are not all zero, so the check means something.
    expect(Object.values(grads).some((tensor) => (tensor.data as Float32Array).some((value) => Math.abs(value) > 1e-4))).toBe(true);
  });
});
