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
import { compileForTest, int64Matrix } from "../../helpers/artifacts";
import { PADDED_IDS, PADDED_MASK, PATTERN_IDS, causalLmBatch } from "../../helpers/batches";
import { Decoder, decodeAgainstFullPass, fullPassLogits, leftPaddedBatchDifference, logitsRow, maxDifference, pairedDecodingDifference } from "../../helpers/decode";
import { centralDifferenceChecks, gradientMismatches } from "../../helpers/gradients";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { trainLosses } from "../../helpers/training";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const GPT2 = path.join(FIXTURES, "gpt2-tiny-op17.onnx");
const LLAMA = path.join(FIXTURES, "llama-tiny.onnx");
const BERT = path.join(FIXTURES, "bert-tiny-op17.onnx");
const TOKENS = 4;
const SPEC = defineSpec({ methods: [promptTuning({ virtualTokens: TOKENS })], seed: 3 });
const DECODERS: [string, string][] = [
  ["gpt2-tiny", GPT2],
  ["llama-tiny", LLAMA],
];

// Below 256, the smallest vocabulary among the fixtures.
const IDS = [1, 188, 155, 60, 75, 229, 139, 115, 174, 127, 246, 62, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140];
// Cached and full computations sum in different orders, and float32 rounding over a few layers stays far below 1e-4.
const TOLERANCE = 1e-4;

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
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

  test("learned positions bound the virtual tokens", () => {
    // gpt2-tiny has 128 learned positions.
    const model = loadModel(GPT2);
    const tooMany = defineSpec({ methods: [promptTuning({ virtualTokens: 128 })] });
    expect(() => applySpec(model, discoverModules(model), tooMany, { mode: "eval" })).toThrow(expect.objectContaining({ code: "E_SPEC_MODEL", option: ["virtualTokens"], message: expect.stringContaining("has 128 learned positions") }));
    const fitting = applySpec(model, discoverModules(model), defineSpec({ methods: [promptTuning({ virtualTokens: 20 })] }), { mode: "eval" });
    expect(fitting.warnings.map((warning) => warning.message)).toContainEqual(expect.stringContaining("at most 108 real tokens"));
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
  test.each(DECODERS)("%s: eval logits equal infer.onnx and keep [batch, sequence, vocab]", async (_name, model) => {
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

  test.each(DECODERS)("%s: prefill and 20 cached steps equal one full pass", async (_name, model) => {
    const artifacts = compileForTest(model, SPEC);
    const decoder = new Decoder(await artifacts.session("infer"), artifacts.params);
    const full = (await decoder.step([IDS], [IDS.map(() => 1)], decoder.emptyCache(1))).logits;
    const { worst, position, cache } = await decodeAgainstFullPass(decoder, IDS, full, { prefill: 4 });
    expect(position).toBe(IDS.length);
    expect(Object.values(cache)[0].dims[2]).toBe(TOKENS + IDS.length);
    expect(worst).toBeLessThan(TOLERANCE);
  });

  test.each(DECODERS)("%s: left-padded batch equals each row alone", async (_name, model) => {
    const artifacts = compileForTest(model, SPEC);
    const decoder = new Decoder(await artifacts.session("infer"), artifacts.params);
    expect(await leftPaddedBatchDifference(decoder, IDS)).toBeLessThan(TOLERANCE);
  });

  test.each(DECODERS)("%s: fused attention gives the same logits", async (_name, model) => {
    const artifacts = compileForTest(model, defineSpec({ methods: [promptTuning({ virtualTokens: TOKENS })], seed: 3, inference: { fusedAttention: true } }));
    const fused = new Decoder(await artifacts.session("infer"), artifacts.params);
    const plain = new Decoder(await compileForTest(model, SPEC).session("infer"), artifacts.params);
    expect(await pairedDecodingDifference(plain, fused, IDS, 6)).toBeLessThan(TOLERANCE);
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
        ids.push(argmax(logitsRow(await fullPassLogits(evaluate, ids, artifacts.params), 0, ids.length - 1)));
      }
      expect(generated[r].ids).toEqual(ids.slice(prompt.length));
    }
  });
});

describe("promptTuning training", () => {
  const BATCH = PADDED_IDS;
  const MASK = PADDED_MASK;
  const feeds = (): Record<string, ort.Tensor> => causalLmBatch(BATCH, MASK);

  test.each(DECODERS)("%s: gradient matches central differences", async (_name, model) => {
    const artifacts = compileForTest(model, SPEC);
    // Entries of the first virtual token (attended by every position) and of the last one (which predicts the first label).
    const { grads, checks } = await centralDifferenceChecks(artifacts, artifacts.params, feeds(), { names: [PROMPT_EMBEDDINGS], indices: (size) => [0, 5, size - 64, size - 1] });
    expect(gradientMismatches(checks, 1e-4, 1e-2)).toEqual([]);
    expect(checks).toHaveLength(4);
    const grad = grads[`${PROMPT_EMBEDDINGS}.grad`].data as Float32Array;
    // Every virtual token gets a gradient: the last one predicts the first label.
    const lastRow = grad.subarray(grad.length - 64);
    expect(Math.max(...Array.from(lastRow, Math.abs))).toBeGreaterThan(1e-6);
  });

  test("llama-tiny: 100 train.onnx steps lower the loss", async () => {
    const spec = defineSpec({ methods: [promptTuning({ virtualTokens: 8 })], train: { optimizer: adamw({ lr: 3e-2 }) }, seed: 7 });
    const artifacts = compileForTest(LLAMA, spec);
    const losses = await trainLosses(artifacts, causalLmBatch(PATTERN_IDS), 100, 3e-2);
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
