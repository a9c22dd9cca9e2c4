import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { compileForTest, int64Matrix, readJson } from "../../helpers/artifacts";
import { CORPUS_DIR, hasCorpus } from "../../helpers/corpus";
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

/** A decoder session with its cache inputs, fed one step at a time. */
class Decoder {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly params: Record<string, ort.Tensor>,
    private readonly cacheInputs: { name: string; kvHeads: number; headDim: number }[],
  ) {}

  static async open(session: ort.InferenceSession, params: Record<string, ort.Tensor>): Promise<Decoder> {
    const cacheInputs = session.inputMetadata
      .filter((input) => input.name.startsWith("past_key_values."))
      .map((input) => {
        const shape = (input as unknown as { shape: readonly (number | string)[] }).shape;
        return { name: input.name, kvHeads: shape[1] as number, headDim: shape[3] as number };
      });
    return new Decoder(session, params, cacheInputs);
  }

  emptyCache(batch: number): Record<string, ort.Tensor> {
    return Object.fromEntries(this.cacheInputs.map((input) => [input.name, new ort.Tensor("float32", new Float32Array(0), [batch, input.kvHeads, 0, input.headDim])]));
  }

  /** Runs one step; returns the logits [batch, tokens, vocab] and the next cache. */
  async step(ids: number[][], mask: number[][], cache: Record<string, ort.Tensor>): Promise<{ logits: ort.Tensor; cache: Record<string, ort.Tensor> }> {
    const outputs = await this.session.run({ input_ids: int64Matrix(ids), attention_mask: int64Matrix(mask), ...cache, ...this.params });
    const next = Object.fromEntries(this.cacheInputs.map((input) => [input.name, outputs[input.name.replace("past_key_values.", "present.")] as ort.Tensor]));
    return { logits: outputs.logits as ort.Tensor, cache: next };
  }
}

/** Non-zero LoRA B for every adapted projection, so the adapters change the logits. */
function adaptedParams(params: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  return Object.fromEntries(
    Object.entries(params).map(([name, tensor]) => [name, name.endsWith("lora_B") ? new ort.Tensor("float32", Float32Array.from(tensor.data as Float32Array, (_, i) => Math.sin(i * 0.7) * 0.05), tensor.dims) : tensor]),
  );
}

function row(logits: ort.Tensor, b: number, t: number): Float32Array {
  const [, tokens, vocab] = logits.dims as number[];
  return (logits.data as Float32Array).subarray((b * tokens + t) * vocab, (b * tokens + t + 1) * vocab);
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

// Below 256, the smallest vocabulary among the decoders.
const IDS = [1, 188, 155, 60, 75, 229, 139, 115, 174, 127, 246, 62, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140];
// Cached and full computations sum in different orders; float32 rounding over a few layers stays far below 1e-4.
const TOLERANCE = 1e-4;

async function artifactsFor(model: string, spec: Spec = SPEC): Promise<{ decoder: Decoder; eval: ort.InferenceSession; params: Record<string, ort.Tensor> }> {
  const artifacts = compileForTest(model, spec);
  const params = adaptedParams(artifacts.params);
  return { decoder: await Decoder.open(await artifacts.session("infer"), params), eval: await artifacts.session("eval"), params };
}

describe("KV-cached inference graph", () => {
  test.each(DECODERS.map((file) => [path.relative(path.resolve(__dirname, "../../.."), file), file]))("%s: prefill and 20 cached steps equal one full pass", async (_name, model) => {
    const { decoder, eval: evaluate, params } = await artifactsFor(model);
    const full = await evaluate.run({ input_ids: int64Matrix([IDS]), attention_mask: int64Matrix([IDS.map(() => 1)]), labels: int64Matrix([IDS]), ...params });
    let cache = decoder.emptyCache(1);
    let position = 0;
    let worst = 0;
    // A prefill of 4 tokens (past length 0), then one token at a time.
    for (const count of [4, ...Array(IDS.length - 4).fill(1)]) {
      const { logits, cache: next } = await decoder.step([IDS.slice(position, position + count)], [Array(position + count).fill(1)], cache);
      for (let t = 0; t < count; t++) worst = Math.max(worst, maxDifference(row(logits, 0, t), row(full.logits as ort.Tensor, 0, position + t)));
      cache = next;
      position += count;
    }
    expect(position).toBe(IDS.length);
    expect(worst).toBeLessThan(TOLERANCE);
  });

  test.each(DECODERS.map((file) => [path.relative(path.resolve(__dirname, "../../.."), file), file]))("%s: left-padded batch of 3 equals each row alone", async (_name, model) => {
    const { decoder } = await artifactsFor(model);
    const prompts = [IDS.slice(0, 8), IDS.slice(3, 8), IDS.slice(10, 12)];
    const width = 8;
    const steps = 20;
    const continuation = (r: number, s: number): number => IDS[(r * 5 + s) % IDS.length];

    // Each row alone, unpadded: its prompt and continuation in one full pass.
    const alone: ort.Tensor[] = [];
    for (const [r, prompt] of prompts.entries()) {
      const sequence = [...prompt, ...Array.from({ length: steps }, (_, s) => continuation(r, s))];
      alone.push((await decoder.step([sequence], [sequence.map(() => 1)], decoder.emptyCache(1))).logits);
    }

    // The batch: prompts left-padded with token 0, then one token per row per step.
    const mask = prompts.map((prompt) => [...Array(width - prompt.length).fill(0), ...prompt.map(() => 1)]);
    const ids = prompts.map((prompt) => [...Array(width - prompt.length).fill(0), ...prompt]);
    let { logits, cache } = await decoder.step(ids, mask, decoder.emptyCache(3));
    let worst = 0;
    for (const [r, prompt] of prompts.entries()) worst = Math.max(worst, maxDifference(row(logits, r, width - 1), row(alone[r], 0, prompt.length - 1)));
    for (let s = 0; s < steps; s++) {
      for (const maskRow of mask) maskRow.push(1);
      ({ logits, cache } = await decoder.step(prompts.map((_, r) => [continuation(r, s)]), mask, cache));
      for (const [r, prompt] of prompts.entries()) worst = Math.max(worst, maxDifference(row(logits, r, 0), row(alone[r], 0, prompt.length + s)));
    }
    expect(worst).toBeLessThan(TOLERANCE);
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
    const decoder = await Decoder.open(await artifacts.session("infer"), artifacts.params);
    const needsPositions = decoder.session.inputNames.includes("position_ids");
    for (const { prompt_ids: prompt, new_ids: expected } of reference) {
      let cache = decoder.emptyCache(1);
      let tokens = prompt;
      let length = 0;
      const generated: number[] = [];
      for (let step = 0; step < expected.length; step++) {
        const mask = [Array(length + tokens.length).fill(1)];
        const extra: Record<string, ort.Tensor> = needsPositions ? { position_ids: int64Matrix([tokens.map((_, i) => length + i)]) } : {};
        const outputs = await decoder.session.run({ input_ids: int64Matrix([tokens]), attention_mask: int64Matrix(mask), ...cache, ...extra, ...artifacts.params });
        const logits = outputs.logits as ort.Tensor;
        const last = row(logits, 0, tokens.length - 1);
        let best = 0;
        for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
        generated.push(best);
        cache = Object.fromEntries(Object.keys(cache).map((name) => [name, outputs[name.replace("past_key_values.", "present.")] as ort.Tensor]));
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
    const fused = await Decoder.open(fusedGraph, plain.decoder.params);
    let plainCache = plain.decoder.emptyCache(2);
    let fusedCache = fused.emptyCache(2);
    const prompts = [IDS.slice(0, 6), [0, 0, ...IDS.slice(8, 12)]];
    const mask = [Array(6).fill(1), [0, 0, 1, 1, 1, 1]];
    let worst = 0;
    let ids = prompts;
    for (let step = 0; step < 10; step++) {
      const a = await plain.decoder.step(ids, mask, plainCache);
      const b = await fused.step(ids, mask, fusedCache);
      worst = Math.max(worst, maxDifference(a.logits.data as Float32Array, b.logits.data as Float32Array));
      plainCache = a.cache;
      fusedCache = b.cache;
      ids = [[IDS[(12 + step) % IDS.length]], [IDS[(3 + step) % IDS.length]]];
      for (const maskRow of mask) maskRow.push(1);
    }
    expect(worst).toBeLessThan(TOLERANCE);
    const ops = (await import("../../../compiler/ir/io")).loadModel(path.join(artifacts.dir, "infer.onnx")).graph.nodes.map((node) => node.opType);
    expect(ops).toContain("MultiHeadAttention");
    expect(ops).not.toContain("Softmax");
  });
});
