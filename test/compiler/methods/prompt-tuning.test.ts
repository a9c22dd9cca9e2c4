import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { adamw, defineSpec, promptTuning, sequenceClassification } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { countBaseParameters, trainableSummary } from "../../../compiler/emit/trainable-summary";
import { loadModel } from "../../../compiler/ir/io";
import { Model } from "../../../compiler/ir/model";
import { tensorType } from "../../../compiler/ir/types";
import type { Value } from "../../../compiler/ir/value";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { discoverModules } from "../../../compiler/match";
import { applySpec } from "../../../compiler/methods/apply";
import { PROMPT_EMBEDDINGS } from "../../../compiler/methods/prompt-tuning";
import { Generator } from "../../../runtime/generator";
import { compileForTest, floatScalar, int64Matrix, int64Scalar } from "../../helpers/artifacts";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const GPT2 = path.join(FIXTURES, "gpt2-tiny-op17.onnx");
const LLAMA = path.join(FIXTURES, "llama-tiny.onnx");
const BERT = path.join(FIXTURES, "bert-tiny-op17.onnx");
const TOKENS = 4;
const SPEC = defineSpec({ methods: [promptTuning({ virtualTokens: TOKENS })], seed: 3 });

// Below 256, the smallest vocabulary among the fixtures.
const IDS = [1, 188, 155, 60, 75, 229, 139, 115, 174, 127, 246, 62, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140];
// Cached and full computations sum in different orders, and float32 rounding over a few layers stays far below 1e-4.
const TOLERANCE = 1e-4;

function logitsRow(logits: ort.Tensor, b: number, t: number): Float32Array {
  const [, tokens, vocab] = logits.dims as number[];
  return (logits.data as Float32Array).subarray((b * tokens + t) * vocab, (b * tokens + t + 1) * vocab);
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Runs infer.onnx one step at a time, keeping the cache. */
class Decoder {
  constructor(
    readonly session: ort.InferenceSession,
    readonly params: Record<string, ort.Tensor>,
  ) {}

  emptyCache(batch: number): Record<string, ort.Tensor> {
    const cache: Record<string, ort.Tensor> = {};
    for (const input of this.session.inputMetadata) {
      if (!input.name.startsWith("past_key_values.")) continue;
      const shape = (input as unknown as { shape: readonly (number | string)[] }).shape;
      cache[input.name] = new ort.Tensor("float32", new Float32Array(0), [batch, shape[1] as number, 0, shape[3] as number]);
    }
    return cache;
  }

  async step(ids: number[][], mask: number[][], cache: Record<string, ort.Tensor>): Promise<{ logits: ort.Tensor; cache: Record<string, ort.Tensor> }> {
    const outputs = await this.session.run({ input_ids: int64Matrix(ids), attention_mask: int64Matrix(mask), ...cache, ...this.params });
    const next = Object.fromEntries(Object.keys(cache).map((name) => [name, outputs[name.replace("past_key_values.", "present.")] as ort.Tensor]));
    return { logits: outputs.logits as ort.Tensor, cache: next };
  }
}

describe("promptTuning planning", () => {
  test("adds one [tokens, hidden] input", () => {
    const model = loadModel(LLAMA);
    const inputs = model.graph.inputs.length;
    const peft = applySpec(model, discoverModules(model), SPEC, { mode: "eval" });
    expect(peft.parameters.map((parameter) => [parameter.name, parameter.shape, parameter.method, parameter.module])).toEqual([[PROMPT_EMBEDDINGS, [TOKENS, 64], "prompt", "embed.tokens"]]);
    expect(model.graph.inputs).toHaveLength(inputs + 1);
    expect(model.graph.lookup(PROMPT_EMBEDDINGS)?.initializer).toBeUndefined();
    expect(peft.precedingLogits).toBeDefined();
  });

  test("random init is seeded N(0, 1)", () => {
    const draw = (seed: number): Float32Array => {
      const model = loadModel(LLAMA);
      const spec = defineSpec({ methods: [promptTuning({ virtualTokens: 64 })], seed });
      return applySpec(model, discoverModules(model), spec, { mode: "eval" }).parameters[0].tensor.data() as Float32Array;
    };
    const first = draw(5);
    expect(draw(5)).toEqual(first);
    expect(draw(6)).not.toEqual(first);
    const mean = first.reduce((sum, value) => sum + value, 0) / first.length;
    const variance = first.reduce((sum, value) => sum + (value - mean) ** 2, 0) / first.length;
    // 4096 draws: the sample mean's standard error is 1/64, the variance's about 0.022.
    expect(Math.abs(mean)).toBeLessThan(0.07);
    expect(Math.abs(variance - 1)).toBeLessThan(0.1);
  });

  test("tokenIds init copies embedding rows, repeated to the token count", () => {
    const model = loadModel(LLAMA);
    const table = model.graph.lookup("model.embed_tokens.weight")!.initializer!.data() as Float32Array;
    const spec = defineSpec({ methods: [promptTuning({ virtualTokens: 5, init: { tokenIds: [7, 300] } })] });
    const [parameter] = applySpec(model, discoverModules(model), spec, { mode: "eval" }).parameters;
    const values = parameter.tensor.data() as Float32Array;
    [7, 300, 7, 300, 7].forEach((id, row) => expect(values.subarray(row * 64, row * 64 + 64)).toEqual(table.subarray(id * 64, id * 64 + 64)));
    expect(parameter.init).toBe("embedding rows of token ids [7, 300, 7, 300, 7]");
  });

  test("id out of range is rejected before the model changes", () => {
    const model = loadModel(LLAMA);
    const nodes = model.graph.nodes.length;
    const spec = defineSpec({ methods: [promptTuning({ virtualTokens: 2, init: { tokenIds: [3, 512] } })] });
    expect(() => applySpec(model, discoverModules(model), spec, { mode: "eval" })).toThrow(expect.objectContaining({ code: "E_SPEC_OPTION", message: expect.stringContaining("token id 512 is out of range") }));
    expect(model.graph.nodes).toHaveLength(nodes);
    expect(model.graph.lookup(PROMPT_EMBEDDINGS)).toBeUndefined();
  });

  test("text init without tokenizer.json is rejected", () => {
    const model = loadModel(LLAMA);
    const spec = defineSpec({ methods: [promptTuning({ virtualTokens: 2, init: { text: "hello" } })] });
    expect(() => applySpec(model, discoverModules(model), spec, { mode: "eval", modelFile: LLAMA })).toThrow(expect.objectContaining({ code: "E_SPEC_OPTION", message: expect.stringContaining("tokenizer.json") }));
    expect(model.graph.lookup(PROMPT_EMBEDDINGS)).toBeUndefined();
  });

  test("two prompt tunings conflict", () => {
    const model = loadModel(LLAMA);
    const spec = defineSpec({ methods: [promptTuning({ virtualTokens: 2 }), promptTuning({ virtualTokens: 3 })] });
    expect(() => applySpec(model, discoverModules(model), spec, { mode: "eval" })).toThrow(expect.objectContaining({ code: "E_SPEC_MODEL", message: expect.stringContaining("cannot share") }));
  });
});

/**
 * Builds a graph with bigscience/bloomz-560m's parameter shapes (hidden 1024,
 * 24 layers, vocabulary 250,880, biases everywhere, a LayerNorm after the
 * embedding, the head tied to the embedding) over a sparse data file, so
 * nothing is read. Attention and activations are left out: only the
 * parameter count and the token embedding matter here.
 */
function bloomShapedModel(dir: string): Model {
  const [hidden, layers, vocab] = [1024, 24, 250880];
  const dataPath = path.join(dir, "model.onnx.data");
  const model = new Model({ irVersion: 8, opsetImports: new Map([["", 17]]), graphName: "bloomz-560m-shapes" });
  const graph = model.graph;
  let offset = 0;
  const weight = (name: string, dims: number[]): Value => {
    const length = dims.reduce((a, b) => a * b, 1) * 4;
    const ref = { location: "model.onnx.data", path: dataPath, offset, length, missing: false };
    offset += Math.ceil(length / 64) * 64;
    return graph.addInitializer(new Tensor(name, DataType.FLOAT, dims, { kind: "external", ref }), true);
  };
  const node = (opType: string, name: string, inputs: Value[]): Value => graph.addNode({ opType, name, inputs }).outputs[0];
  const layerNorm = (prefix: string, scope: string, x: Value): Value => node("LayerNormalization", `${scope}/LayerNormalization`, [x, weight(`${prefix}.weight`, [hidden]), weight(`${prefix}.bias`, [hidden])]);
  const linear = (prefix: string, scope: string, x: Value, inFeatures: number, outFeatures: number): Value =>
    node("Add", `${scope}/Add`, [node("MatMul", `${scope}/MatMul`, [x, weight(`${prefix}.weight`, [inFeatures, outFeatures])]), weight(`${prefix}.bias`, [outFeatures])]);

  const ids = graph.addInput("input_ids", tensorType(DataType.INT64, ["batch", "sequence"]));
  const table = weight("transformer.word_embeddings.weight", [vocab, hidden]);
  let h = layerNorm("transformer.word_embeddings_layernorm", "/transformer/word_embeddings_layernorm", node("Gather", "/transformer/word_embeddings/Gather", [table, ids]));
  for (let i = 0; i < layers; i++) {
    const prefix = `transformer.h.${i}`;
    const scope = `/transformer/h.${i}`;
    const attention = linear(`${prefix}.self_attention.query_key_value`, `${scope}/self_attention/query_key_value`, layerNorm(`${prefix}.input_layernorm`, `${scope}/input_layernorm`, h), hidden, 3 * hidden);
    const mixed = node("Slice", `${scope}/self_attention/Slice`, [attention, graph.addInitializer(Tensor.fromArray("starts", DataType.INT64, [1], BigInt64Array.of(0n))), graph.addInitializer(Tensor.fromArray("ends", DataType.INT64, [1], BigInt64Array.of(BigInt(hidden)))), graph.addInitializer(Tensor.fromArray("axes", DataType.INT64, [1], BigInt64Array.of(-1n)))]);
    h = node("Add", `${scope}/attention_residual`, [h, linear(`${prefix}.self_attention.dense`, `${scope}/self_attention/dense`, mixed, hidden, hidden)]);
    const up = linear(`${prefix}.mlp.dense_h_to_4h`, `${scope}/mlp/dense_h_to_4h`, layerNorm(`${prefix}.post_attention_layernorm`, `${scope}/post_attention_layernorm`, h), hidden, 4 * hidden);
    h = node("Add", `${scope}/mlp_residual`, [h, linear(`${prefix}.mlp.dense_4h_to_h`, `${scope}/mlp/dense_4h_to_h`, up, 4 * hidden, hidden)]);
  }
  const final = layerNorm("transformer.ln_f", "/transformer/ln_f", h);
  const logits = node("MatMul", "/lm_head/MatMul", [final, node("Transpose", "/lm_head/Transpose", [table])]);
  logits.name = "logits";
  logits.type = tensorType(DataType.FLOAT, ["batch", "sequence", vocab]);
  graph.addOutput(logits);
  fs.closeSync(fs.openSync(dataPath, "w"));
  fs.truncateSync(dataPath, offset);
  return model;
}

describe("promptTuning parameter count", () => {
  test("bloomz-560m shapes, 8 tokens: PEFT's summary line", () => {
    const model = bloomShapedModel(makeTempDir("peftc-bloom-"));
    const base = countBaseParameters(model);
    // 256,901,120 embedding + 24 × 12,596,224 layer + 4,096 LayerNorm values: bloomz-560m's count, the tied head counted once.
    expect(base).toBe(559214592);
    const peft = applySpec(model, discoverModules(model), defineSpec({ methods: [promptTuning({ virtualTokens: 8 })] }), { mode: "eval" });
    expect(peft.parameters.map((parameter) => [parameter.module, parameter.shape])).toEqual([["embed.tokens", [8, 1024]]]);
    expect(trainableSummary(base, peft.parameters).line).toBe("trainable params: 8,192 || all params: 559,222,784 || trainable%: 0.0015");
  });
});

describe("promptTuning graphs", () => {
  test.each([
    ["gpt2-tiny", GPT2],
    ["llama-tiny", LLAMA],
  ])("%s: eval logits equal infer.onnx and keep [batch, sequence, vocab]", async (_name, model) => {
    const artifacts = compileForTest(model, SPEC);
    const ids = [IDS.slice(0, 7), IDS.slice(7, 14)];
    const mask = [Array(7).fill(1), [1, 1, 1, 1, 1, 0, 0]];
    const evaluated = await (await artifacts.session("eval")).run({ input_ids: int64Matrix(ids), attention_mask: int64Matrix(mask), labels: int64Matrix(ids), ...artifacts.params });
    expect(evaluated.logits.dims).toEqual([2, 7, 512]);
    const decoder = new Decoder(await artifacts.session("infer"), artifacts.params);
    const { logits, cache } = await decoder.step(ids, mask, decoder.emptyCache(2));
    expect(logits.dims).toEqual(evaluated.logits.dims);
    // The cache contains the virtual tokens after the prefill.
    expect(Object.values(cache)[0].dims[2]).toBe(TOKENS + 7);
    let worst = 0;
    for (let b = 0; b < 2; b++) for (let t = 0; t < 7; t++) if (mask[b][t]) worst = Math.max(worst, maxDifference(logitsRow(logits, b, t), logitsRow(evaluated.logits as ort.Tensor, b, t)));
    expect(worst).toBeLessThan(TOLERANCE);
  });

  test.each([
    ["gpt2-tiny", GPT2],
    ["llama-tiny", LLAMA],
  ])("%s: prefill and 20 cached steps equal one full pass", async (_name, model) => {
    const artifacts = compileForTest(model, SPEC);
    const decoder = new Decoder(await artifacts.session("infer"), artifacts.params);
    const full = (await decoder.step([IDS], [IDS.map(() => 1)], decoder.emptyCache(1))).logits;
    let cache = decoder.emptyCache(1);
    let position = 0;
    let worst = 0;
    for (const count of [4, ...Array(IDS.length - 4).fill(1)]) {
      const { logits, cache: next } = await decoder.step([IDS.slice(position, position + count)], [Array(position + count).fill(1)], cache);
      for (let t = 0; t < count; t++) worst = Math.max(worst, maxDifference(logitsRow(logits, 0, t), logitsRow(full, 0, position + t)));
      cache = next;
      position += count;
    }
    expect(position).toBe(IDS.length);
    expect(Object.values(cache)[0].dims[2]).toBe(TOKENS + IDS.length);
    expect(worst).toBeLessThan(TOLERANCE);
  });

  test.each([
    ["gpt2-tiny", GPT2],
    ["llama-tiny", LLAMA],
  ])("%s: left-padded batch equals each row alone", async (_name, model) => {
    const artifacts = compileForTest(model, SPEC);
    const decoder = new Decoder(await artifacts.session("infer"), artifacts.params);
    const prompts = [IDS.slice(0, 8), IDS.slice(3, 8), IDS.slice(10, 12)];
    const width = 8;
    const steps = 20;
    const continuation = (r: number, s: number): number => IDS[(r * 5 + s) % IDS.length];

    const alone: ort.Tensor[] = [];
    for (const [r, prompt] of prompts.entries()) {
      const sequence = [...prompt, ...Array.from({ length: steps }, (_, s) => continuation(r, s))];
      alone.push((await decoder.step([sequence], [sequence.map(() => 1)], decoder.emptyCache(1))).logits);
    }

    const mask = prompts.map((prompt) => [...Array(width - prompt.length).fill(0), ...prompt.map(() => 1)]);
    const ids = prompts.map((prompt) => [...Array(width - prompt.length).fill(0), ...prompt]);
    let { logits, cache } = await decoder.step(ids, mask, decoder.emptyCache(3));
    let worst = 0;
    for (const [r, prompt] of prompts.entries()) worst = Math.max(worst, maxDifference(logitsRow(logits, r, width - 1), logitsRow(alone[r], 0, prompt.length - 1)));
    for (let s = 0; s < steps; s++) {
      for (const maskRow of mask) maskRow.push(1);
      ({ logits, cache } = await decoder.step(prompts.map((_, r) => [continuation(r, s)]), mask, cache));
      for (const [r, prompt] of prompts.entries()) worst = Math.max(worst, maxDifference(logitsRow(logits, r, 0), logitsRow(alone[r], 0, prompt.length + s)));
    }
    expect(worst).toBeLessThan(TOLERANCE);
  });

  test.each([
    ["gpt2-tiny", GPT2],
    ["llama-tiny", LLAMA],
  ])("%s: fused attention gives the same logits", async (_name, model) => {
    const artifacts = compileForTest(model, defineSpec({ methods: [promptTuning({ virtualTokens: TOKENS })], seed: 3, inference: { fusedAttention: true } }));
    const fused = new Decoder(await artifacts.session("infer"), artifacts.params);
    const plain = new Decoder(await compileForTest(model, SPEC).session("infer"), artifacts.params);
    let plainCache = plain.emptyCache(2);
    let fusedCache = fused.emptyCache(2);
    let ids = [IDS.slice(0, 6), [0, 0, ...IDS.slice(8, 12)]];
    const mask = [Array(6).fill(1), [0, 0, 1, 1, 1, 1]];
    let worst = 0;
    for (let step = 0; step < 6; step++) {
      const a = await plain.step(ids, mask, plainCache);
      const b = await fused.step(ids, mask, fusedCache);
      worst = Math.max(worst, maxDifference(a.logits.data as Float32Array, b.logits.data as Float32Array));
      plainCache = a.cache;
      fusedCache = b.cache;
      ids = [[IDS[12 + step]], [IDS[3 + step]]];
      for (const maskRow of mask) maskRow.push(1);
    }
    expect(worst).toBeLessThan(TOLERANCE);
    expect(loadModel(path.join(artifacts.dir, "infer.onnx")).graph.nodes.map((node) => node.opType)).toContain("MultiHeadAttention");
  });

  test("virtual tokens change the logits", async () => {
    const artifacts = compileForTest(LLAMA, SPEC);
    const decoder = new Decoder(await artifacts.session("infer"), artifacts.params);
    const changed = Object.fromEntries(Object.entries(artifacts.params).map(([name, tensor]) => [name, new ort.Tensor("float32", Float32Array.from(tensor.data as Float32Array, (value) => value * 3), tensor.dims)]));
    const other = new Decoder(decoder.session, changed);
    const a = (await decoder.step([IDS.slice(0, 6)], [Array(6).fill(1)], decoder.emptyCache(1))).logits;
    const b = (await other.step([IDS.slice(0, 6)], [Array(6).fill(1)], other.emptyCache(1))).logits;
    expect(maxDifference(a.data as Float32Array, b.data as Float32Array)).toBeGreaterThan(1e-3);
  });

  test("Generator decodes a prompt-tuned folder as eval.onnx does", async () => {
    const artifacts = compileForTest(LLAMA, SPEC);
    const generator = await Generator.open(artifacts.dir, { tokenizer: null });
    const prompts = [IDS.slice(0, 5), IDS.slice(9, 12)];
    const generated = await generator.generate(prompts, { maxNewTokens: 8, eosTokenIds: [] });
    const evaluate = await artifacts.session("eval");
    for (const [r, prompt] of prompts.entries()) {
      // Greedy decoding by full recomputation with eval.onnx, one row at a time.
      const ids = [...prompt];
      for (let step = 0; step < 8; step++) {
        const outputs = await evaluate.run({ input_ids: int64Matrix([ids]), attention_mask: int64Matrix([ids.map(() => 1)]), labels: int64Matrix([ids]), ...artifacts.params });
        ids.push(argmax(logitsRow(outputs.logits as ort.Tensor, 0, ids.length - 1)));
      }
      expect(generated[r].ids).toEqual(ids.slice(prompt.length));
    }
  });
});

describe("promptTuning training", () => {
  const BATCH = [
    [3, 14, 15, 92, 65, 35],
    [8, 97, 93, 23, 0, 0],
  ];
  const MASK = [
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0],
  ];
  const feeds = (): Record<string, ort.Tensor> => ({
    input_ids: int64Matrix(BATCH),
    attention_mask: int64Matrix(MASK),
    labels: int64Matrix(BATCH.map((row, b) => row.map((id, t) => (MASK[b][t] ? id : -100)))),
  });

  test.each([
    ["gpt2-tiny", GPT2],
    ["llama-tiny", LLAMA],
  ])("%s: gradient matches central differences", async (_name, model) => {
    const artifacts = compileForTest(model, SPEC);
    const params = artifacts.params;
    const grad = (await (await artifacts.session("grad")).run({ ...feeds(), ...params }))[`${PROMPT_EMBEDDINGS}.grad`].data as Float32Array;
    const evaluate = await artifacts.session("eval");
    const base = params[PROMPT_EMBEDDINGS];
    const lossWith = async (index: number, delta: number): Promise<number> => {
      const changed = Float32Array.from(base.data as Float32Array);
      changed[index] += delta;
      const outputs = await evaluate.run({ ...feeds(), ...params, [PROMPT_EMBEDDINGS]: new ort.Tensor("float32", changed, base.dims) });
      return outputs.loss.data[0] as number;
    };
    const h = 1e-2;
    // Entries of the first virtual token (attended by every position) and of the last one (which predicts the first label).
    for (const index of [0, 5, grad.length - 64, grad.length - 1]) {
      // The five-point stencil's truncation error is O(h⁴), so a step large enough to keep float32 rounding small still gives an accurate slope.
      const [plus2, plus1, minus1, minus2] = await Promise.all([2 * h, h, -h, -2 * h].map((delta) => lossWith(index, delta)));
      const slope = (-plus2 + 8 * plus1 - 8 * minus1 + minus2) / (12 * h);
      expect(Math.abs(grad[index] - slope)).toBeLessThan(1e-4 + 1e-2 * Math.abs(slope));
    }
    // Every virtual token gets a gradient: the last one predicts the first label.
    const lastRow = grad.subarray(grad.length - 64);
    expect(Math.max(...Array.from(lastRow, Math.abs))).toBeGreaterThan(1e-6);
  });

  test("llama-tiny: 100 train.onnx steps lower the loss", async () => {
    const spec = defineSpec({ methods: [promptTuning({ virtualTokens: 8 })], train: { optimizer: adamw({ lr: 3e-2 }) }, seed: 7 });
    const artifacts = compileForTest(LLAMA, spec);
    const session = await artifacts.session("train");
    const ids = [
      [5, 17, 29, 41, 53, 65, 77, 89, 101, 113, 125, 137],
      [200, 190, 180, 170, 160, 150, 140, 130, 120, 110, 100, 90],
    ];
    const batch = { input_ids: int64Matrix(ids), attention_mask: int64Matrix(ids.map((row) => row.map(() => 1))), labels: int64Matrix(ids) };
    let params: Record<string, ort.Tensor> = { ...artifacts.params };
    let state = artifacts.zeroState();
    const losses: number[] = [];
    for (let step = 1; step <= 100; step++) {
      const outputs = await session.run({ ...batch, ...params, ...state, lr: floatScalar(3e-2), step: int64Scalar(step) });
      losses.push(outputs.loss.data[0] as number);
      params = Object.fromEntries(Object.keys(params).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
      state = Object.fromEntries(Object.keys(state).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    // The fixture's random head keeps logits small, so eight virtual tokens alone move the loss little:
    // measured 6.207 to 6.024 (Node 20, onnxruntime-node 1.31 CPU). The test requires a fall of 0.1.
    expect(losses[99]).toBeLessThan(losses[0] - 0.1);
  });

  test("bert-tiny classification trains through the first virtual token", async () => {
    const spec: Spec = defineSpec({ methods: [promptTuning({ virtualTokens: 3 })], train: { loss: sequenceClassification({ classes: 2 }) } });
    const artifacts = compileForTest(BERT, spec);
    const batch = {
      input_ids: int64Matrix(BATCH),
      attention_mask: int64Matrix(MASK),
      token_type_ids: int64Matrix(BATCH.map((row) => row.map(() => 0))),
      labels: new ort.Tensor("int64", BigInt64Array.of(1n, 0n), [2]),
    };
    const outputs = await (await artifacts.session("grad")).run({ ...batch, ...artifacts.params });
    const grad = outputs[`${PROMPT_EMBEDDINGS}.grad`].data as Float32Array;
    const rowNorm = (row: number): number => Math.hypot(...grad.subarray(row * 64, row * 64 + 64));
    // BERT's pooler reads position 0, which is the first virtual token, as in PEFT, so that row gets by far the
    // largest gradient (measured 3.1e-4 against 1.4e-5 for the others).
    expect(rowNorm(0)).toBeGreaterThan(5 * rowNorm(1));
    expect(rowNorm(0)).toBeGreaterThan(5 * rowNorm(2));
    expect(rowNorm(1)).toBeGreaterThan(0);
    expect(Number.isFinite(outputs.loss.data[0] as number)).toBe(true);
    expect(fs.existsSync(path.join(artifacts.dir, "infer.onnx"))).toBe(false);
  });
});
