import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { adapter, defineSpec, ia3, lora, prefixTuning, promptTuning, select } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { compileArtifacts } from "../../../compiler/emit/compile";
import { loadSpec } from "../../../compiler/dsl/load";
import { type CompiledArtifacts, compileForTest, floatScalar, int64Matrix, int64Scalar } from "../../helpers/artifacts";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const ROOT = path.resolve(__dirname, "../../..");
const LLAMA = path.join(ROOT, "fixtures", "llama-tiny.onnx");
const GPT2 = path.join(ROOT, "fixtures", "gpt2-tiny-op17.onnx");
const IDS = [1, 188, 155, 60, 75, 229, 139, 115, 174, 127, 246, 62, 30, 40, 50, 60];

/** The initial tensors moved off their zeros and ones, so every method changes the logits and every gradient is non-zero. */
function perturbed(artifacts: CompiledArtifacts): Record<string, ort.Tensor> {
  const params: Record<string, ort.Tensor> = {};
  artifacts.manifest.parameters.forEach((parameter, k) => {
    const base = artifacts.params[parameter.name].data as Float32Array;
    params[parameter.name] = new ort.Tensor("float32", Float32Array.from(base, (value, i) => value + 0.05 * Math.sin(i * 0.7 + k)), parameter.shape);
  });
  return params;
}

function compile(spec: Spec, model: string): CompiledArtifacts {
  return compileForTest(model, spec);
}

describe("hybrid specs", () => {
  const specs = (): [string, Spec, string][] => [
    ["UniPELT", loadSpec(path.join(ROOT, "specs", "unipelt.ts")).spec, LLAMA],
    ["UniPELT", loadSpec(path.join(ROOT, "specs", "unipelt.ts")).spec, GPT2],
    ["MAM adapter", loadSpec(path.join(ROOT, "specs", "mam-adapter.ts")).spec, LLAMA],
    ["prompt + IA3 + LoRA", defineSpec({ methods: [promptTuning({ virtualTokens: 3 }), ia3(), lora({ targets: select.role("attn.q"), rank: 2 })] }), GPT2],
  ];

  test.each(specs().map(([name, , model]) => [name, path.basename(model)]))("%s on %s: gradients match central differences", async (name, file) => {
    const [, spec, model] = specs().find(([each, , path_]) => each === name && path.basename(path_) === file)!;
    const artifacts = compile(spec, model);
    const params = perturbed(artifacts);
    const batch = { input_ids: int64Matrix([IDS.slice(0, 8), IDS.slice(8, 16)]), attention_mask: int64Matrix([Array(8).fill(1), [1, 1, 1, 1, 1, 1, 0, 0]]), labels: int64Matrix([IDS.slice(0, 8), [...IDS.slice(8, 14), -100, -100]]) };
    const grads = await (await artifacts.session("grad")).run({ ...batch, ...params });
    const evaluate = await artifacts.session("eval");
    const lossWith = async (parameter: string, index: number, delta: number): Promise<number> => {
      const changed = Float32Array.from(params[parameter].data as Float32Array);
      changed[index] += delta;
      return (await evaluate.run({ ...batch, ...params, [parameter]: new ort.Tensor("float32", changed, params[parameter].dims) })).loss.data[0] as number;
    };
    const methods = new Set(artifacts.manifest.parameters.map((parameter) => parameter.method));
    expect(methods.size).toBeGreaterThanOrEqual(2);
    const h = 1e-2;
    for (const parameter of artifacts.manifest.parameters) {
      const grad = grads[`${parameter.name}.grad`].data as Float32Array;
      for (const index of [0, grad.length - 1]) {
        const [plus2, plus1, minus1, minus2] = await Promise.all([2 * h, h, -h, -2 * h].map((delta) => lossWith(parameter.name, index, delta)));
        const slope = (-plus2 + 8 * plus1 - 8 * minus1 + minus2) / (12 * h);
        expect(Math.abs(grad[index] - slope)).toBeLessThan(2e-4 + 0.01 * Math.abs(slope));
      }
    }
  });

  test.each(specs().map(([name, , model]) => [name, path.basename(model)]))("%s on %s: cached decoding equals the eval graph's logits", async (name, file) => {
    const [, spec, model] = specs().find(([each, , path_]) => each === name && path.basename(path_) === file)!;
    const artifacts = compile(spec, model);
    const params = perturbed(artifacts);
    const full = await (await artifacts.session("eval")).run({ input_ids: int64Matrix([IDS]), attention_mask: int64Matrix([IDS.map(() => 1)]), labels: int64Matrix([IDS]), ...params });
    const infer = await artifacts.session("infer");
    const caches = infer.inputMetadata.filter((input) => input.name.startsWith("past_key_values."));
    let cache: Record<string, ort.Tensor> = Object.fromEntries(
      caches.map((input) => {
        const shape = (input as unknown as { shape: (number | string)[] }).shape;
        return [input.name, new ort.Tensor("float32", new Float32Array(0), [1, shape[1] as number, 0, shape[3] as number])];
      }),
    );
    const inferParams = Object.fromEntries(infer.inputNames.filter((input) => input in params).map((input) => [input, params[input]]));
    const vocab = (full.logits.dims as number[])[2];
    let position = 0;
    let worst = 0;
    for (const count of [4, ...Array(IDS.length - 4).fill(1)]) {
      const outputs = await infer.run({ input_ids: int64Matrix([IDS.slice(position, position + count)]), attention_mask: int64Matrix([Array(position + count).fill(1)]), ...cache, ...inferParams });
      const logits = outputs.logits.data as Float32Array;
      for (let t = 0; t < count; t++) {
        for (let v = 0; v < vocab; v++) worst = Math.max(worst, Math.abs(logits[t * vocab + v] - (full.logits.data as Float32Array)[(position + t) * vocab + v]));
      }
      cache = Object.fromEntries(caches.map((input) => [input.name, outputs[input.name.replace("past_key_values.", "present.")] as ort.Tensor]));
      position += count;
    }
    expect(worst).toBeLessThan(1e-4);
  });

  test("UniPELT: 60 training steps lower the loss on llama-tiny", async () => {
    const artifacts = compile(loadSpec(path.join(ROOT, "specs", "unipelt.ts")).spec, LLAMA);
    const session = await artifacts.session("train");
    let params: Record<string, ort.Tensor> = { ...artifacts.params };
    let state = artifacts.zeroState();
    const rows = [IDS.slice(0, 8), IDS.slice(8, 16)];
    const batch = { input_ids: int64Matrix(rows), attention_mask: int64Matrix(rows.map((row) => row.map(() => 1))), labels: int64Matrix(rows) };
    const losses: number[] = [];
    for (let step = 1; step <= 60; step++) {
      const outputs = await session.run({ ...batch, ...params, ...state, lr: floatScalar(1e-2), step: int64Scalar(step) });
      losses.push(outputs.loss.data[0] as number);
      params = Object.fromEntries(Object.keys(params).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
      state = Object.fromEntries(Object.keys(state).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
    }
    // llama-tiny's random head keeps its logits small, so the loss falls from about 6.2 to 5.1 here.
    expect(losses[59]).toBeLessThan(losses[0] - 0.5);
  });
});

describe("method conflicts", () => {
  const compileError = (spec: Spec): string => {
    try {
      compileArtifacts({ modelFile: LLAMA, outDir: path.join(makeTempDir(), "out"), spec });
    } catch (error) {
      return (error as Error).message;
    }
    return "compiled";
  };

  test.each([
    ["two prompt tunings", defineSpec({ methods: [promptTuning({ virtualTokens: 4 }), promptTuning({ virtualTokens: 2 })] })],
    ["two prefix tunings", defineSpec({ methods: [prefixTuning({ virtualTokens: 4 }), prefixTuning({ virtualTokens: 2 })] })],
    ["two serial adapters after the MLP", defineSpec({ methods: [adapter({ kind: "houlsby", bottleneck: 4 }), adapter({ kind: "pfeiffer", bottleneck: 8 })] })],
    ["two (IA)3 on the values", defineSpec({ methods: [ia3(), ia3({ targets: select.role("attn.v"), feedforward: select.role("attn.v").and(select.role("mlp.down")) })] })],
  ])("%s are rejected", (_name, spec) => {
    expect(compileError(spec)).toMatch(/cannot share .* with /);
  });

  test("methods on different places of one module compose", () => {
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.v"), rank: 2 }), ia3({ targets: select.role("attn.v"), feedforward: select.role("attn.v").and(select.role("mlp.down")) }), adapter({ kind: "parallel", sublayers: ["mlp"], bottleneck: 4 }), adapter({ kind: "pfeiffer", bottleneck: 4 })] });
    expect(compileError(spec)).toBe("compiled");
  });
});
