import * as path from "node:path";
import type * as ort from "onnxruntime-node";
import { adamw, bitfit, defineSpec, layerNormTuning, lora, select, unfreeze } from "../../../compiler/dsl";
import { loadModel } from "../../../compiler/ir/io";
import { discoverModules } from "../../../compiler/match";
import { applySpec } from "../../../compiler/methods/apply";
import { compileForTest, floatScalar, int64Matrix, int64Scalar } from "../../helpers/artifacts";
import { removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const GPT2 = path.join(FIXTURES, "gpt2-tiny-op17.onnx");

function parametersOf(file: string, methods: ReturnType<typeof defineSpec>["methods"]): { name: string; method: string; size: number }[] {
  const model = loadModel(file);
  const peft = applySpec(model, discoverModules(model), defineSpec({ methods }), { mode: "eval" });
  return peft.parameters.map((parameter) => ({ name: parameter.name, method: parameter.method, size: parameter.tensor.size }));
}

describe("selective methods", () => {
  test("bitfit trains every bias and nothing else", () => {
    const model = loadModel(GPT2);
    const biases = discoverModules(model).modules.flatMap((module) => (module.bias ? [module.bias.value.name] : []));
    const parameters = parametersOf(GPT2, [bitfit()]);
    expect(parameters.map((parameter) => parameter.name).sort()).toEqual([...new Set(biases)].sort());
    expect(parameters.every((parameter) => parameter.method === "bitfit")).toBe(true);
  });

  test("layerNormTuning trains the norms' scales and biases", () => {
    const parameters = parametersOf(GPT2, [layerNormTuning()]);
    // Two norms per layer and the final norm, each with a 64-wide scale and bias.
    expect(parameters).toHaveLength(2 * (2 * 2 + 1));
    expect(parameters.every((parameter) => /ln_\d|ln_f/.test(parameter.name) && parameter.size === 64)).toBe(true);
  });

  test("unfreeze trains whole selected modules", () => {
    const parameters = parametersOf(GPT2, [unfreeze({ targets: select.layers(1).and(select.role("mlp.down")) })]);
    expect(parameters.map((parameter) => parameter.name)).toEqual(["transformer.h.1.mlp.c_proj.weight", "transformer.h.1.mlp.c_proj.bias"]);
  });

  test("selective and LoRA combine", () => {
    const parameters = parametersOf(GPT2, [lora({ targets: select.role("attn.q") }), bitfit({ targets: select.role("attn.o") })]);
    expect(parameters.filter((parameter) => parameter.method === "lora")).toHaveLength(4);
    expect(parameters.filter((parameter) => parameter.method === "bitfit").map((parameter) => parameter.name)).toEqual(["transformer.h.0.attn.c_proj.bias", "transformer.h.1.attn.c_proj.bias"]);
  });

  test("bitfit on a model without biases is an error", () => {
    expect(() => parametersOf(path.join(FIXTURES, "llama-tiny.onnx"), [bitfit()])).toThrow(/bitfit: the selected modules have no bias/);
  });

  test("layerNormTuning rejects non-norm targets", () => {
    expect(() => parametersOf(GPT2, [layerNormTuning({ targets: select.role("attn.q") })])).toThrow(/layerNormTuning targets: select\.role\("attn\.q"\) matches no module/);
  });

  test("bitfit training lowers the loss", async () => {
    const artifacts = compileForTest(GPT2, defineSpec({ methods: [bitfit(), layerNormTuning()], train: { optimizer: adamw({ lr: 1e-2 }) } }));
    const session = await artifacts.session("train");
    const ids = [[5, 17, 29, 41, 53, 65, 77, 89]];
    let params: Record<string, ort.Tensor> = { ...artifacts.params };
    let state = artifacts.zeroState();
    const losses: number[] = [];
    for (let step = 1; step <= 40; step++) {
      const outputs = await session.run({ input_ids: int64Matrix(ids), attention_mask: int64Matrix(ids.map((row) => row.map(() => 1))), labels: int64Matrix(ids), ...params, ...state, lr: floatScalar(1e-2), step: int64Scalar(step) });
      losses.push(outputs.loss.data[0] as number);
      params = Object.fromEntries(Object.keys(params).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
      state = Object.fromEntries(Object.keys(state).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
    }
    // Biases and norms move the loss slowly: measured 6.22 → 5.45 after 40 steps; the test requires a fall of 0.5.
    expect(losses[39]).toBeLessThan(losses[0] - 0.5);
  });
});
