import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { loadSpec } from "../../compiler/dsl/load";
import { compileArtifacts } from "../../compiler/emit/compile";
import { readSafetensors } from "../../compiler/emit/safetensors";
import { CORPUS_DIR, hasCorpus } from "../helpers/corpus";
import { makeFeeds, maxAbsDifference, openSession } from "../helpers/ort";
import { DataType } from "../../compiler/onnx/dtype";
import { makeTempDir, removeTempDirs } from "../helpers/temp";

const ROOT = path.resolve(__dirname, "../..");
const FIXTURES = path.join(ROOT, "fixtures");

afterAll(removeTempDirs);

/** Which models each example spec must compile against, as specs/README.md lists them. */
const CASES: [spec: string, model: string][] = [
  ["lora-attention-qv.ts", path.join(FIXTURES, "gpt2-tiny-op14.onnx")],
  ["lora-attention-qv.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["lora-attention-qv.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["lora-attention-qv.ts", path.join(FIXTURES, "bert-tiny-op17.onnx")],
  ["lora-all-linear.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["lora-all-linear.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["lora-all-linear.ts", path.join(FIXTURES, "bert-tiny-op14.onnx")],
  ["lora-gpt2-fused-qv.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["lora-gpt2-fused-qv.ts", path.join(FIXTURES, "gpt2-tiny-op14.onnx")],
  ["demo-lora.ts", path.join(FIXTURES, "demo", "base.onnx")],
  ["bitfit.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["bitfit.ts", path.join(FIXTURES, "bert-tiny-op17.onnx")],
  ["demo-lora.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["adapter-houlsby.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["adapter-houlsby.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["adapter-houlsby.ts", path.join(FIXTURES, "bert-tiny-op17.onnx")],
  ["adapter-parallel.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["adapter-parallel.ts", path.join(FIXTURES, "gpt2-tiny-op14.onnx")],
  ["ia3.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["ia3.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["ia3.ts", path.join(FIXTURES, "bert-tiny-op17.onnx")],
  ["prompt-tuning.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["prompt-tuning.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["prompt-tuning.ts", path.join(FIXTURES, "bert-tiny-op17.onnx")],
  ["prefix-tuning.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["prefix-tuning.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["unipelt.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["unipelt.ts", path.join(FIXTURES, "gpt2-tiny-op17.onnx")],
  ["mam-adapter.ts", path.join(FIXTURES, "llama-tiny.onnx")],
  ["mam-adapter.ts", path.join(FIXTURES, "gpt2-tiny-op14.onnx")],
];
/** Specs whose added tensors change the outputs from the start (virtual tokens, prefixes), so eval.onnx keeps only the base logits' shape. */
const OUTPUT_CHANGING = new Set(["prompt-tuning.ts", "prefix-tuning.ts", "unipelt.ts", "mam-adapter.ts"]);
const CORPUS_CASES: [spec: string, model: string][] = hasCorpus
  ? [
      ["lora-attention-qv.ts", path.join(CORPUS_DIR, "aidreams260K", "model.onnx")],
      ["lora-attention-qv.ts", path.join(CORPUS_DIR, "aidreams260K", "model_with_past.onnx")],
      ["prompt-tuning.ts", path.join(CORPUS_DIR, "aidreams260K", "model_with_past.onnx")],
      ["prefix-tuning.ts", path.join(CORPUS_DIR, "aidreams260K", "model_with_past.onnx")],
      ["lora-all-linear.ts", path.join(CORPUS_DIR, "aidreams260K", "model_nofold.onnx")],
      ["lora-attention-qv.ts", path.join(CORPUS_DIR, "torch-gpt2tiny-op17", "model.onnx")],
      ["lora-all-linear.ts", path.join(CORPUS_DIR, "torch-gpt2tiny-op17", "model.onnx")],
    ]
  : [];

/** Reads params.safetensors as feeds for the graph's parameter inputs. */
function parameterFeeds(outDir: string): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of readSafetensors(path.join(outDir, "params.safetensors")).tensors) {
    feeds[name] = new ort.Tensor(tensor.dtype === DataType.FLOAT16 ? "float16" : "float32", tensor.data() as Float32Array, [...tensor.dims]);
  }
  return feeds;
}

describe("example specs", () => {
  test("every spec file is listed", () => {
    const files = fs.readdirSync(path.join(ROOT, "specs")).filter((file) => file.endsWith(".ts"));
    expect(files.sort()).toEqual([...new Set(CASES.map(([spec]) => spec))].sort());
  });

  test.each([...CASES, ...CORPUS_CASES].map(([spec, model]) => [spec, path.relative(ROOT, model), model]))("%s on %s keeps the base outputs", async (spec, _shown, model) => {
    const loaded = loadSpec(path.join(ROOT, "specs", spec));
    const out = path.join(makeTempDir(), "out");
    const result = compileArtifacts({ modelFile: model, outDir: out, spec: loaded.spec, specFile: loaded.file, relocate: (error) => loaded.relocate(error) });
    expect(result.manifest.parameters.length).toBeGreaterThan(0);
    // LoRA's B starts at zero and selective methods start from the base tensors, so eval.onnx must give the base model's logits bit for bit.
    const base = await openSession(model);
    const session = await openSession(path.join(out, "eval.onnx"));
    const feeds = makeFeeds(session);
    // eval.onnx lists loss and label_count first, then the model's own outputs, logits first.
    const logitsName = session.outputNames[2];
    const expected = await base.run(Object.fromEntries(base.inputNames.map((name) => [name, feeds[name]])), [logitsName]);
    const outputs = await session.run({ ...feeds, ...parameterFeeds(out) });
    if (OUTPUT_CHANGING.has(spec)) expect(outputs[logitsName].dims).toEqual(expected[logitsName].dims);
    else expect(maxAbsDifference(expected, { [logitsName]: outputs[logitsName] })).toBe(0);
    expect(Number.isFinite(outputs.loss.data[0] as number)).toBe(true);
    await session.release();
    await base.release();
  });
});
