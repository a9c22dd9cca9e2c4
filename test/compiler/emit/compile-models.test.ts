import * as path from "node:path";
import { causalLM, defineSpec, lora, regression, select } from "../../../compiler/dsl";
import { compileArtifacts } from "../../../compiler/emit/compile";
import { compileForTest } from "../../helpers/artifacts";
import { CORPUS_DIR, hasCorpus } from "../../helpers/corpus";
import { makeFeeds } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const LORA = [lora({ targets: select.role("attn.q", "attn.v"), rank: 2 })];

describe("compile on other model kinds", () => {
  test("regression targets must match the outputs", () => {
    const spec = defineSpec({ methods: LORA, train: { loss: regression({ targets: 3 }) } });
    expect(() => compileArtifacts({ modelFile: path.join(FIXTURES, "bert-tiny-op17.onnx"), outDir: path.join(makeTempDir(), "out"), spec })).toThrow(/has 2 outputs per sequence\. Set targets to 2/);
  });

  test("a classifier gets no inference graph", () => {
    const result = compileArtifacts({ modelFile: path.join(FIXTURES, "bert-tiny-op17.onnx"), outDir: path.join(makeTempDir(), "out"), spec: defineSpec({ methods: LORA }) });
    expect(result.manifest.graphs.infer).toBeUndefined();
    expect(result.manifest.graphs.train).toBeDefined();
  });
});

(hasCorpus ? describe : describe.skip)("compile on corpus model kinds", () => {
  test("an encoder without a head needs a named loss", () => {
    expect(() => compileArtifacts({ modelFile: path.join(CORPUS_DIR, "torch-berttiny-op17", "model.onnx"), outDir: path.join(makeTempDir(), "out"), spec: defineSpec({ methods: LORA }) })).toThrow(/no output named "logits".*Name one in the spec's train settings/);
  });

  test("a decoder the cache rewrite cannot handle still trains", () => {
    const result = compileArtifacts({ modelFile: path.join(CORPUS_DIR, "llama-tiny-ee-dynamic", "llama_export_dynamic.onnx"), outDir: path.join(makeTempDir(), "out"), spec: defineSpec({ methods: LORA, train: { loss: causalLM() } }) }).manifest;
    expect(result.graphs.train).toBeDefined();
    expect(result.graphs.infer).toBeUndefined();
  });

  test("a GroupQueryAttention export's eval graph runs", async () => {
    const artifacts = compileForTest(path.join(CORPUS_DIR, "genai-qwen-gqa-fp16", "decoder.onnx"), defineSpec({ methods: LORA }));
    const session = await artifacts.session("eval");
    const outputs = await session.run({ ...makeFeeds(session, { batch_size: 1, past_seq_len: 0, total_seq_len: 3, seq_len: 3 }), ...artifacts.params });
    expect(Number.isFinite(Number(outputs.loss.data[0]))).toBe(true);
  });
});
