import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { adamw, defineSpec, lora, prefixTuning, select } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { loadModel } from "../../../compiler/ir/io";
import { discoverModules } from "../../../compiler/match/discover";
import { applySpec } from "../../../compiler/methods/apply";
import { flatPrefixLayout, prefixFromFlat, prefixIntoFlat } from "../../../compiler/methods/prefix-layout";
import { PROJECTION_NAMES, foldProjection } from "../../../compiler/methods/prefix-projection";
import { countBaseParameters, trainableSummary } from "../../../compiler/emit/trainable-summary";
import { buildGpt2 } from "../../../fixtures/models/gpt2";
import { compileArtifacts } from "../../../compiler/emit/compile";
import { readSafetensors } from "../../../compiler/emit/safetensors";
import { Generator } from "../../../runtime/generator";
import { runPeftc } from "../../helpers/cli";
import { type CompiledArtifacts, compileForTest, int64Matrix } from "../../helpers/artifacts";
import { PADDED_IDS, PADDED_MASK, PATTERN_IDS, causalLmBatch } from "../../helpers/batches";
import { Decoder, decodeAgainstFullPass, fullPassLogits, leftPaddedBatchDifference, maxDifference, sessionParams } from "../../helpers/decode";
import { centralDifferenceChecks, gradientMismatches } from "../../helpers/gradients";
import { CORPUS_DIR, hasCorpus } from "../../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { trainLosses } from "../../helpers/training";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const GPT2 = path.join(FIXTURES, "gpt2-tiny-op17.onnx");
const LLAMA = path.join(FIXTURES, "llama-tiny.onnx");

// Below 256, the smallest vocabulary of the fixtures.
const IDS = [1, 188, 155, 60, 75, 229, 139, 115, 174, 127, 246, 62, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140];
// Cached and full computations sum in different orders. Float32 rounding over two layers stays far below 1e-4.
const TOLERANCE = 1e-4;

function prefixSpec(options: Parameters<typeof prefixTuning>[0], extra: Partial<Parameters<typeof defineSpec>[0]> = {}): Spec {
  return defineSpec({ methods: [prefixTuning(options)], seed: 3, ...extra });
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

describe("prefix tuning parameters", () => {
  test("bloomz-560m shapes: 20 tokens train 983,040", () => {
    // BLOOMZ-560m's shapes (24 layers, hidden 1024, 16 heads, vocabulary 250,880) on a GPT-2 graph with shared zero weights.
    // Its 2 learned positions stand in for BLOOM's embedding LayerNorm (2,048 values), so the base count is BLOOM's 559,214,592.
    const model = buildGpt2({ layers: 24, hidden: 1024, heads: 16, vocab: 250880, positions: 2, opset: 17, seed: 0, weights: "zeros" });
    const discovery = discoverModules(model);
    const base = countBaseParameters(model);
    const peft = applySpec(model, discovery, prefixSpec({ virtualTokens: 20 }), { mode: "eval" });
    const trainable = peft.parameters.reduce((sum, parameter) => sum + sizeOf(parameter.shape), 0);
    expect(trainable).toBe(24 * 2 * 20 * 1024);
    expect(trainable).toBe(983040);
    expect(base).toBe(559214592);
    // The line PEFT prints for prefix tuning of bigscience/bloomz-560m with 20 virtual tokens.
    expect(trainableSummary(base, peft.parameters).line).toBe("trainable params: 983,040 || all params: 560,197,632 || trainable%: 0.1755");
    expect(peft.parameters[0].shape).toEqual([16, 20, 64]);
  });

  test("GQA prefixes use the kv heads", () => {
    const model = loadModel(LLAMA);
    const discovery = discoverModules(model);
    const peft = applySpec(model, discovery, prefixSpec({ virtualTokens: 5 }), { mode: "eval" });
    // llama-tiny has 2 layers, 4 query heads and 2 key/value heads of 16, so PEFT's token_dim becomes hidden / heads · kv_heads = 32.
    expect(peft.parameters.map((parameter) => parameter.name)).toEqual(["prefix.layers.0.key", "prefix.layers.0.value", "prefix.layers.1.key", "prefix.layers.1.value"]);
    for (const parameter of peft.parameters) expect(parameter.shape).toEqual([2, 5, 16]);
    expect(peft.parameters.reduce((sum, parameter) => sum + sizeOf(parameter.shape), 0)).toBe(2 * 2 * 5 * 32);
  });

  test("projection and gate parameter shapes", () => {
    const model = loadModel(LLAMA);
    const peft = applySpec(model, discoverModules(model), prefixSpec({ virtualTokens: 4, projection: { hidden: 12 }, gate: true }), { mode: "eval" });
    const shapes = Object.fromEntries(peft.parameters.map((parameter) => [parameter.name, parameter.shape]));
    expect(shapes).toEqual({
      [PROJECTION_NAMES.embedding]: [4, 32],
      [PROJECTION_NAMES.firstWeight]: [12, 32],
      [PROJECTION_NAMES.firstBias]: [12],
      [PROJECTION_NAMES.secondWeight]: [2 * 2 * 32, 12],
      [PROJECTION_NAMES.secondBias]: [2 * 2 * 32],
      "prefix.layers.0.gate.weight": [64, 1],
      "prefix.layers.0.gate.bias": [1],
      "prefix.layers.1.gate.weight": [64, 1],
      "prefix.layers.1.gate.bias": [1],
    });
  });

  test("layers selector limits the prefixed layers", () => {
    const model = loadModel(GPT2);
    const peft = applySpec(model, discoverModules(model), prefixSpec({ virtualTokens: 2, layers: select.layers(1) }), { mode: "eval" });
    expect(peft.parameters.map((parameter) => parameter.name)).toEqual(["prefix.layers.1.key", "prefix.layers.1.value"]);
  });

  test("overlapping prefix tunings conflict, model unchanged", () => {
    const model = loadModel(GPT2);
    const before = model.graph.nodes.length;
    const inputs = model.graph.inputs.length;
    const spec = defineSpec({ methods: [prefixTuning({ virtualTokens: 2 }), prefixTuning({ virtualTokens: 3, layers: select.layers(0) })] });
    expect(() => applySpec(model, discoverModules(model), spec, { mode: "eval" })).toThrow(/prefixTuning \(key and value prefix\) cannot share layers\.0\.attn:prefix/);
    expect(model.graph.nodes.length).toBe(before);
    expect(model.graph.inputs.length).toBe(inputs);
  });

  test("prefix tuning composes with LoRA", () => {
    const model = loadModel(GPT2);
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.o"), rank: 2 }), prefixTuning({ virtualTokens: 2 })] });
    const peft = applySpec(model, discoverModules(model), spec, { mode: "eval" });
    expect(peft.parameters.filter((parameter) => parameter.method === "prefix")).toHaveLength(4);
    expect(peft.parameters.filter((parameter) => parameter.method === "lora")).toHaveLength(4);
  });
});

describe("flat prefix layout", () => {
  const layers = [
    { layer: 0, kvHeads: 2, headDim: 3 },
    { layer: 1, kvHeads: 2, headDim: 3 },
  ];
  const layout = flatPrefixLayout(4, layers);

  test("hand-computed index matches PEFT's view", () => {
    // PEFT views a row as [tokens, layers·2, heads, head_dim]: element (n, 2l + kv, h, d) sits at n·width + (2l + kv)·token_dim + h·head_dim + d.
    expect(layout.width).toBe(2 * 2 * 6);
    const flat = Float32Array.from({ length: 4 * layout.width }, (_, i) => i);
    const value1 = prefixFromFlat(flat, layout, layers[1], layout.layers[1].valueOffset);
    // Layer 1's value, head 1, token 2, dim 0: 2·24 + (2·1 + 1)·6 + 1·3 + 0 = 69, stored at [h, n, d] = (1·4 + 2)·3 + 0.
    expect(value1[(1 * 4 + 2) * 3 + 0]).toBe(69);
    const key0 = prefixFromFlat(flat, layout, layers[0], layout.layers[0].keyOffset);
    expect(key0[(0 * 4 + 3) * 3 + 2]).toBe(3 * 24 + 0 + 0 + 2);
  });

  test("round trip through flat rows", () => {
    const flat = new Float32Array(4 * layout.width);
    const tensors = layout.layers.flatMap((entry) => [entry.keyOffset, entry.valueOffset].map((offset) => ({ entry, offset, values: Float32Array.from({ length: 24 }, () => Math.random()) })));
    for (const { entry, offset, values } of tensors) prefixIntoFlat(flat, layout, entry.layer, offset, values);
    for (const { entry, offset, values } of tensors) expect(prefixFromFlat(flat, layout, entry.layer, offset)).toEqual(values);
  });
});

const GRADIENT_CASES: [string, string, Spec][] = [
  ["gpt2-tiny", GPT2, prefixSpec({ virtualTokens: 3 })],
  ["llama-tiny", LLAMA, prefixSpec({ virtualTokens: 3 })],
  ["gpt2-tiny projection", GPT2, prefixSpec({ virtualTokens: 2, projection: { hidden: 6 } })],
  ["llama-tiny projection", LLAMA, prefixSpec({ virtualTokens: 2, projection: { hidden: 6 } })],
  ["llama-tiny projection, gate", LLAMA, prefixSpec({ virtualTokens: 2, projection: { hidden: 6 }, gate: true })],
  ["gpt2-tiny gate", GPT2, prefixSpec({ virtualTokens: 3, gate: true })],
];

describe("prefix tuning gradients", () => {
  test.each(GRADIENT_CASES)("%s matches central differences", async (_name, model, spec) => {
    const artifacts = compileForTest(model, spec);
    const { checks } = await centralDifferenceChecks(artifacts, { ...artifacts.params }, causalLmBatch(PADDED_IDS, PADDED_MASK));
    // Five-point stencil, as in the whole-graph LoRA gradient check.
    expect(gradientMismatches(checks, 2e-4, 0.01)).toEqual([]);
    expect(checks).toHaveLength(3 * artifacts.manifest.parameters.length);
    // Every prefix, projection and gate tensor reaches the loss.
    const nonZero = checks.filter((check) => Math.abs(check.numeric) > 1e-6).length;
    expect(nonZero).toBeGreaterThan(artifacts.manifest.parameters.length);
  });
});

describe("prefix tuning training", () => {
  test("100 steps on llama-tiny lower the loss", async () => {
    const artifacts = compileForTest(LLAMA, prefixSpec({ virtualTokens: 8, projection: { hidden: 32 }, gate: true }, { train: { optimizer: adamw({ lr: 1e-2 }), clipGradNorm: 1 } }));
    const losses = await trainLosses(artifacts, causalLmBatch(PATTERN_IDS), 100, 1e-2);
    expect(losses.every(Number.isFinite)).toBe(true);
    // The fixture's random head gives logits too small to fit the rows, and prefixes cannot rescale it as
    // LoRA on the head does: measured 6.20 → 5.40 over 100 steps (Node 20, onnxruntime-node 1.31 CPU).
    expect(losses[0]).toBeGreaterThan(5.8);
    expect(losses[99]).toBeLessThan(losses[0] - 0.5);
    expect(losses[99]).toBeLessThan(losses[49]);
  });
});

/** Feeds of infer.onnx besides tokens, mask and cache: the trainable prefixes, or the prefixes folded from a projection. */
function inferParams(artifacts: CompiledArtifacts, session: ort.InferenceSession): Record<string, ort.Tensor> {
  return sessionParams(session, artifacts.params);
}

const DECODE_CASES: [string, string, Spec][] = [
  ["gpt2-tiny", GPT2, prefixSpec({ virtualTokens: 3 })],
  ["llama-tiny", LLAMA, prefixSpec({ virtualTokens: 3 })],
  ["llama-tiny gate", LLAMA, prefixSpec({ virtualTokens: 3, gate: true })],
  ["gpt2-tiny fused attention", GPT2, prefixSpec({ virtualTokens: 3 }, { inference: { fusedAttention: true } })],
  ["llama-tiny fused attention", LLAMA, prefixSpec({ virtualTokens: 3 }, { inference: { fusedAttention: true } })],
  // PyTorch's own GPT-2 export transposes keys with perm [0, 2, 3, 1], which the cache rewrite splits in two.
  ...(hasCorpus ? [["torch-gpt2tiny-op17", path.join(CORPUS_DIR, "torch-gpt2tiny-op17", "model.onnx"), prefixSpec({ virtualTokens: 3 })] as [string, string, Spec]] : []),
];

describe("prefix tuning infer.onnx", () => {
  test.each(DECODE_CASES)("%s: prefill and 20 cached steps equal one full pass", async (_name, model, spec) => {
    const artifacts = compileForTest(model, spec);
    const infer = await artifacts.session("infer");
    const params = inferParams(artifacts, infer);
    expect(Object.keys(params).length).toBeGreaterThan(0);
    const full = await fullPassLogits(await artifacts.session("eval"), IDS, artifacts.params);
    // The cache contains real tokens only, not the prefix.
    const afterStep = (cache: Record<string, ort.Tensor>, position: number): void => {
      for (const tensor of Object.values(cache)) expect(tensor.dims[2]).toBe(position);
    };
    const { worst } = await decodeAgainstFullPass(new Decoder(infer, params), IDS, full, { prefill: 4, afterStep });
    expect(worst).toBeLessThan(TOLERANCE);
    const fusedCores = loadModel(path.join(artifacts.dir, "infer.onnx")).graph.nodes.filter((node) => node.opType === "MultiHeadAttention").length;
    expect(fusedCores).toBe(spec.inference.fusedAttention ? 2 : 0);
  });

  test.each(DECODE_CASES.slice(0, 3))("%s: left-padded batch equals each row alone", async (_name, model, spec) => {
    const artifacts = compileForTest(model, spec);
    const infer = await artifacts.session("infer");
    expect(await leftPaddedBatchDifference(new Decoder(infer, inferParams(artifacts, infer)), IDS)).toBeLessThan(TOLERANCE);
  });

  test("prefixes change the logits", async () => {
    const artifacts = compileForTest(LLAMA, prefixSpec({ virtualTokens: 3 }));
    const evaluate = await artifacts.session("eval");
    const feeds = { input_ids: int64Matrix([IDS.slice(0, 6)]), attention_mask: int64Matrix([Array(6).fill(1)]), labels: int64Matrix([IDS.slice(0, 6)]) };
    const trained = await evaluate.run({ ...feeds, ...artifacts.params });
    const scaled = Object.fromEntries(Object.entries(artifacts.params).map(([name, tensor]) => [name, new ort.Tensor("float32", Float32Array.from(tensor.data as Float32Array, (x) => x * 3), tensor.dims)]));
    const changed = await evaluate.run({ ...feeds, ...scaled });
    expect(maxDifference(trained.logits.data as Float32Array, changed.logits.data as Float32Array)).toBeGreaterThan(1e-3);
  });
});

describe("prefix projection in infer.onnx", () => {
  const spec = (merge: boolean): Spec => prefixSpec({ virtualTokens: 3, projection: { hidden: 8 }, gate: true }, { inference: { mergeAdapters: merge } });

  /** The eval graph's logits of IDS with the initial parameters. */
  async function evalLogits(artifacts: CompiledArtifacts): Promise<ort.Tensor> {
    return fullPassLogits(await artifacts.session("eval"), IDS, artifacts.params);
  }

  test("merged: folded prefixes equal the eval logits", async () => {
    const artifacts = compileForTest(LLAMA, spec(true));
    const infer = await artifacts.session("infer");
    expect(infer.inputNames.some((name) => name.startsWith("prefix.layers.") && !name.includes("gate"))).toBe(false);
    expect(infer.inputNames.some((name) => name.startsWith("prefix.transform") || name.startsWith("prefix.embedding"))).toBe(false);
    const decoder = new Decoder(infer, inferParams(artifacts, infer));
    const result = await decoder.step([IDS], [IDS.map(() => 1)], decoder.emptyCache(1));
    expect(maxDifference(result.logits.data as Float32Array, (await evalLogits(artifacts)).data as Float32Array)).toBeLessThan(TOLERANCE);
  });

  test("unmerged: infer reads plain prefixes that fold to the eval logits", async () => {
    const artifacts = compileForTest(LLAMA, spec(false));
    const infer = await artifacts.session("infer");
    const plain = infer.inputNames.filter((name) => /^prefix\.layers\.\d+\.(key|value)$/.test(name));
    expect(plain).toEqual(["prefix.layers.0.key", "prefix.layers.0.value", "prefix.layers.1.key", "prefix.layers.1.value"]);
    const read = (name: string): Float32Array => artifacts.params[name].data as Float32Array;
    const layers = [0, 1].map((layer) => ({ layer, kvHeads: 2, headDim: 16 }));
    const folded = foldProjection(
      { embedding: read(PROJECTION_NAMES.embedding), firstWeight: read(PROJECTION_NAMES.firstWeight), firstBias: read(PROJECTION_NAMES.firstBias), secondWeight: read(PROJECTION_NAMES.secondWeight), secondBias: read(PROJECTION_NAMES.secondBias) },
      flatPrefixLayout(3, layers),
      32,
      8,
    );
    const params = inferParams(artifacts, infer);
    for (const name of plain) params[name] = new ort.Tensor("float32", folded.get(name)!, [2, 3, 16]);
    const decoder = new Decoder(infer, params);
    const result = await decoder.step([IDS], [IDS.map(() => 1)], decoder.emptyCache(1));
    expect(maxDifference(result.logits.data as Float32Array, (await evalLogits(artifacts)).data as Float32Array)).toBeLessThan(TOLERANCE);
  });
  test("recompile replaces a folder with prefix.onnx", () => {
    const artifacts = compileForTest(LLAMA, spec(false));
    expect(fs.existsSync(path.join(artifacts.dir, "prefix.onnx"))).toBe(true);
    const again = compileArtifacts({ modelFile: LLAMA, outDir: artifacts.dir, spec: spec(false) });
    expect(again.files).toContain("prefix.onnx");
  });

  test("generator folds prefixes with prefix.onnx", async () => {
    const unmerged = compileForTest(LLAMA, spec(false));
    const merged = compileForTest(LLAMA, spec(true));
    expect(unmerged.manifest.graphs.prefix?.outputs).toEqual(["prefix.layers.0.key", "prefix.layers.0.value", "prefix.layers.1.key", "prefix.layers.1.value"]);
    expect(merged.manifest.graphs.prefix).toBeUndefined();
    const folding = await Generator.open(unmerged.dir, { tokenizer: null });
    const constant = await Generator.open(merged.dir, { tokenizer: null });
    expect(folding.parameterInputs).toContain(PROJECTION_NAMES.embedding);
    const options = { maxNewTokens: 8, eosTokenIds: [] };
    const [folded] = await folding.generate([IDS.slice(0, 5)], options);
    const [reference] = await constant.generate([IDS.slice(0, 5)], options);
    expect(folded.ids).toEqual(reference.ids);
    // A call's projection parameters are folded again: a large embedding changes the greedy ids.
    const embedding = unmerged.params[PROJECTION_NAMES.embedding];
    const changed = new ort.Tensor("float32", Float32Array.from(embedding.data as Float32Array, (x, i) => x * 40 + (i % 7)), embedding.dims);
    const [other] = await folding.generate([IDS.slice(0, 5)], { ...options, params: { [PROJECTION_NAMES.embedding]: changed } });
    expect(other.ids).not.toEqual(reference.ids);
    await folding.release();
    await constant.release();
  });
});

describe("prefix tuning rejections", () => {
  test("gate with fused attention is rejected", () => {
    expect(() => compileForTest(GPT2, prefixSpec({ virtualTokens: 2, gate: true }, { inference: { fusedAttention: true } }))).toThrow(/gate scales the attention probabilities/);
  });

  (hasCorpus ? test : test.skip)("fused attention cores are rejected by layer", () => {
    const model = path.join(CORPUS_DIR, "genai-qwen-gqa-fp16", "decoder.onnx");
    expect(() => compileForTest(model, prefixSpec({ virtualTokens: 2 }))).toThrow(/layer 0 uses the fused attention op com\.microsoft::GroupQueryAttention \("GQA_0"\)/);
  });
});

(hasCorpus ? describe : describe.skip)("prefix tuning on aidreams260K", () => {
  test("own cache equals the rewritten model's full pass", async () => {
    const spec = prefixSpec({ virtualTokens: 3 });
    const plain = compileForTest(path.join(CORPUS_DIR, "aidreams260K", "model.onnx"), spec);
    const withPast = compileForTest(path.join(CORPUS_DIR, "aidreams260K", "model_with_past.onnx"), spec);
    const ids = IDS.slice(0, 10).map((id) => id % 512);
    const full = await fullPassLogits(await plain.session("eval"), ids, plain.params);
    const infer = await withPast.session("infer");
    const params = inferParams(withPast, infer);
    expect(Object.keys(params)).toHaveLength(8);
    const { worst, position } = await decodeAgainstFullPass(new Decoder(infer, params), ids, full, { prefill: 4, positionIds: true });
    expect(position).toBe(ids.length);
    expect(worst).toBeLessThan(TOLERANCE);
  });
});

describe("prefix tuning PEFT export", () => {
  /** Runs export-adapter on a compiled folder and reads the adapter back. */
  async function exported(artifacts: CompiledArtifacts): Promise<{ config: Record<string, unknown>; rows: Float32Array; dims: number[] }> {
    const out = path.join(makeTempDir("peftc-prefix-adapter-"), "adapter");
    const result = await runPeftc("export-adapter", artifacts.dir, "--out", out, "--base-model", "tiny");
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const config = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    const tensor = readSafetensors(path.join(out, "adapter_model.safetensors")).tensors.get("prompt_embeddings")!;
    return { config, rows: Float32Array.from(tensor.data() as ArrayLike<number>), dims: [...tensor.dims] };
  }

  test("llama-tiny prefixes map to PEFT's rows", async () => {
    const artifacts = compileForTest(LLAMA, prefixSpec({ virtualTokens: 3 }));
    const { config, rows, dims } = await exported(artifacts);
    expect(config).toMatchObject({ peft_type: "PREFIX_TUNING", task_type: "CAUSAL_LM", base_model_name_or_path: "tiny", num_virtual_tokens: 3, token_dim: 32, num_attention_heads: 2, num_layers: 2, encoder_hidden_size: 32, prefix_projection: false, inference_mode: true });
    expect(dims).toEqual([3, 2 * 2 * 32]);
    // Row n, column (2l + kv)·token_dim + h·head_dim + d contains layer l's key (kv 0) or value (kv 1) at [h, n, d].
    for (const [layer, kv, h, n, d] of [
      [0, 0, 0, 0, 0],
      [1, 1, 1, 2, 15],
      [1, 0, 0, 1, 7],
      [0, 1, 1, 2, 3],
    ]) {
      const source = artifacts.params[`prefix.layers.${layer}.${kv === 0 ? "key" : "value"}`].data as Float32Array;
      expect(rows[n * 128 + (2 * layer + kv) * 32 + h * 16 + d]).toBe(source[(h * 3 + n) * 16 + d]);
    }
  });

  test("projection exports the computed rows", async () => {
    const artifacts = compileForTest(GPT2, prefixSpec({ virtualTokens: 2, projection: { hidden: 8 } }));
    const { config, rows } = await exported(artifacts);
    expect(config).toMatchObject({ token_dim: 64, num_attention_heads: 4, num_layers: 2, encoder_hidden_size: 8, prefix_projection: true });
    // The folded key of layer 1 (as infer.onnx reads it) sits at columns (2·1 + 0)·64 of each row.
    const read = (name: string): Float32Array => artifacts.params[name].data as Float32Array;
    const layers = [0, 1].map((layer) => ({ layer, kvHeads: 4, headDim: 16 }));
    const folded = foldProjection({ embedding: read(PROJECTION_NAMES.embedding), firstWeight: read(PROJECTION_NAMES.firstWeight), firstBias: read(PROJECTION_NAMES.firstBias), secondWeight: read(PROJECTION_NAMES.secondWeight), secondBias: read(PROJECTION_NAMES.secondBias) }, flatPrefixLayout(2, layers), 64, 8);
    const key1 = folded.get("prefix.layers.1.key")!;
    expect(rows[1 * 256 + 2 * 64 + 3 * 16 + 5]).toBeCloseTo(key1[(3 * 2 + 1) * 16 + 5], 5);
  });

  test.each([
    ["gate", prefixSpec({ virtualTokens: 2, gate: true }), /UniPELT gates/],
    ["some layers", prefixSpec({ virtualTokens: 2, layers: select.layers(0) }), /covers 1 of the model's 2 attention layers/],
  ])("%s cannot be exported", async (_name, spec, message) => {
    const artifacts = compileForTest(GPT2, spec);
    const result = await runPeftc("export-adapter", artifacts.dir, "--out", path.join(makeTempDir("peftc-prefix-adapter-"), "adapter"));
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(message);
  });
});
