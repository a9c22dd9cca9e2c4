import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { compileForTest, int64Matrix, readJson } from "../../helpers/artifacts";
import { CORPUS_DIR, hasCorpus } from "../../helpers/corpus";
import { Decoder, decodeAgainstFullPass, fullPassLogits, leftPaddedBatchDifference, logitsRow, pairedDecodingDifference } from "../../helpers/decode";
import { removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const SPEC = defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8 })] });

const DECODERS: string[] = [
  path.join(FIXTURES, "gpt2-tiny-op14.onnx"),
  path.join(FIXTURES, "gpt2-tiny-op17.onnx"),
  path.join(FIXTURES, "llama-tiny.onnx"),
  ...(hasCorpus
    ? [path.join(CORPUS_DIR, "aidreams260K", "model.onnx"), path.join(CORPUS_DIR, "aidreams260K", "model_nofold.onnx"), path.join(CORPUS_DIR, "torch-gpt2tiny-op17", "model.onnx")]
    : []),
];

/** Non-zero LoRA B for every adapted projection, so the adapters change the logits. */
function adaptedParams(params: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  return Object.fromEntries(
    Object.entries(params).map(([name, tensor]) => [name, name.endsWith("lora_B") ? new ort.Tensor("float32", Float32Array.from(tensor.data as Float32Array, (_, i) => Math.sin(i * 0.7) * 0.05), tensor.dims) : tensor]),
  );
}

// Below 256, the smallest vocabulary among the decoders.
const IDS = [1, 188, 155, 60, 75, 229, 139, 115, 174, 127, 246, 62, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140];
// Cached and full computations sum in different orders; float32 rounding over a few layers stays far below 1e-4.
const TOLERANCE = 1e-4;

async function artifactsFor(model: string, spec: Spec = SPEC): Promise<{ decoder: Decoder; eval: ort.InferenceSession; params: Record<string, ort.Tensor> }> {
  const artifacts = compileForTest(model, spec);
  const params = adaptedParams(artifacts.params);
  return { decoder: new Decoder(await artifacts.session("infer"), params), eval: await artifacts.session("eval"), params };
}

describe("KV-cached inference graph", () => {
  test.each(DECODERS.map((file) => [path.relative(path.resolve(__dirname, "../../.."), file), file]))("%s: prefill and 20 cached steps equal one full pass", async (_name, model) => {
    const { decoder, eval: evaluate, params } = await artifactsFor(model);
    const full = await fullPassLogits(evaluate, IDS, params);
    // A prefill of 4 tokens (past length 0), then one token at a time.
    const { worst, position } = await decodeAgainstFullPass(decoder, IDS, full, { prefill: 4 });
    expect(position).toBe(IDS.length);
    expect(worst).toBeLessThan(TOLERANCE);
  });

  test.each(DECODERS.map((file) => [path.relative(path.resolve(__dirname, "../../.."), file), file]))("%s: left-padded batch of 3 equals each row alone", async (_name, model) => {
    const { decoder } = await artifactsFor(model);
    expect(await leftPaddedBatchDifference(decoder, IDS)).toBeLessThan(TOLERANCE);
  });
});

(hasCorpus ? describe : describe.skip)("greedy decoding on aidreams260K", () => {
  interface GenerationCase {
    prompt_ids: number[];
    new_ids: number[];
  }
  const reference = hasCorpus ? readJson<{ cases: GenerationCase[] }>(path.join(CORPUS_DIR, "aidreams260K", "reference", "generation.json")).cases : [];

  test.each(["model.onnx", "model_with_past.onnx"])("%s reproduces the reference ids", async (file) => {
    const artifacts = compileForTest(path.join(CORPUS_DIR, "aidreams260K", file), SPEC);
    const decoder = new Decoder(await artifacts.session("infer"), artifacts.params);
    const needsPositions = decoder.session.inputNames.includes("position_ids");
    for (const { prompt_ids: prompt, new_ids: expected } of reference) {
      let cache = decoder.emptyCache(1);
      let tokens = prompt;
      let length = 0;
      const generated: number[] = [];
      for (let step = 0; step < expected.length; step++) {
        const mask = [Array(length + tokens.length).fill(1)];
        const extra: Record<string, ort.Tensor> = needsPositions ? { position_ids: int64Matrix([tokens.map((_, i) => length + i)]) } : {};
        const outputs = await decoder.step([tokens], mask, cache, extra);
        const last = logitsRow(outputs.logits, 0, tokens.length - 1);
        let best = 0;
        for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
        generated.push(best);
        cache = outputs.cache;
        length += tokens.length;
        tokens = [best];
      }
      expect(generated).toEqual(expected);
    }
  });
});

describe("fused attention path", () => {
  const fusedSpec = defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8 })], inference: { fusedAttention: true } });

  test.each(DECODERS.map((file) => [path.relative(path.resolve(__dirname, "../../.."), file), file]))("%s: MultiHeadAttention gives the same logits", async (_name, model) => {
    const plain = await artifactsFor(model);
    const artifacts = compileForTest(model, fusedSpec);
    const fusedGraph = await artifacts.session("infer");
    expect(artifacts.manifest.graphs.infer).toBeDefined();
    const fused = new Decoder(fusedGraph, plain.decoder.params);
    expect(await pairedDecodingDifference(plain.decoder, fused, IDS, 10)).toBeLessThan(TOLERANCE);
    const ops = (await import("../../../compiler/ir/io")).loadModel(path.join(artifacts.dir, "infer.onnx")).graph.nodes.map((node) => node.opType);
    expect(ops).toContain("MultiHeadAttention");
    expect(ops).not.toContain("Softmax");
  });
});
