import * as path from "node:path";
import { openSession } from "../helpers/ort";
import { CORPUS_DIR, describeCorpus } from "../helpers/corpus";

/**
 * The corpus graphs that onnxruntime-node 1.31 cannot run, each for a reason
 * outside peftc. Pinning the reasons keeps the other suites' skip lists
 * honest: if onnxruntime starts running one of these, this test fails.
 */
describeCorpus("corpus graphs onnxruntime-node cannot run", () => {
  it.each([
    ["bloom-3layer-training-ort/3layer_bloom_optimized_training.onnx", /org\.pytorch\.aten:ATen.*not a registered/],
    ["onnx-node-tests/test_swiglu/model.onnx", /Opset 28 is under development/],
    ["phi35-mini-2l-graphonly/model_microsoft_Phi-3_5-mini-instruct-custom-default-d1rt1.onnx", /External data path does not exist/],
    ["phi4-mini-2l-graphonly/microsoft_Phi-4-mini-reasoning-custom-default-f32-cpu.onnx", /External data path does not exist/],
  ])("%s is rejected for its known reason", async (relative, reason) => {
    await expect(openSession(path.join(CORPUS_DIR, relative))).rejects.toThrow(reason);
  });
});
