import * as path from "node:path";
import { CORPUS_DIR, describeCorpus } from "../../../helpers/corpus";
import { removeTempDirs } from "../../../helpers/temp";
import { compareWithOnnxRuntime, expectAgreement } from "./onnxruntime-comparison";

/**
 * The LLaMA forward and backward graphs from AOTAutograd have static shapes
 * (batch 2, sequence 1024, hidden 1024) and take their weights as inputs,
 * so onnxruntime does real work here: about 5 s and 12 s on two cores.
 * They run in their own file so Jest can run them beside the other suites.
 */
describeCorpus("shape inference against onnxruntime on the static LLaMA graphs", () => {
  afterAll(removeTempDirs);

  it.each(["llama-dort-aot-ee/noopt-llama-custom__0.onnx", "llama-dort-aot-ee/noopt-llama-custom__1.onnx"])("%s", async (relative) => {
    expectAgreement(await compareWithOnnxRuntime(path.join(CORPUS_DIR, relative), { sizes: {}, vocabulary: 1024 }));
  });
});
