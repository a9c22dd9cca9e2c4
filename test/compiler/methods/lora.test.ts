import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { countBaseParameters, trainableSummary } from "../../../compiler/emit/trainable-summary";
import { loadModel, saveModel } from "../../../compiler/ir/io";
import type { Model } from "../../../compiler/ir/model";
import { discoverModules } from "../../../compiler/match";
import { type PeftGraph, applySpec } from "../../../compiler/methods/apply";
import { loraDelta, mergeLora } from "../../../compiler/methods/lora-merge";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { GPT2_SMALL, buildGpt2 } from "../../../fixtures/models/gpt2";
import { CORPUS_DIR, describeCorpus } from "../../helpers/corpus";
import { makeFeeds, maxAbsDifference, openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const DECODERS = ["gpt2-tiny-op14.onnx", "gpt2-tiny-op17.onnx", "llama-tiny.onnx"];
const ENCODERS = ["bert-tiny-op14.onnx", "bert-tiny-op17.onnx"];

afterAll(removeTempDirs);

/** Feeds a batch of two rows, the second right-padded, for the model's own (non-parameter) inputs. */
function batchFeeds(model: Model): Record<string, ort.Tensor> {
  const ids = [3, 14, 15, 92, 65, 35, 8, 97, 93, 23, 84, 62];
  const mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of model.graph.inputs) {
    if (input.initializer) continue;
    const values = input.name === "attention_mask" ? mask : input.name === "token_type_ids" ? mask.map(() => 0) : ids;
    feeds[input.name] = new ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), [2, 6]);
  }
  return feeds;
}

async function run(model: Model, dir: string, name: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const file = path.join(dir, name);
  saveModel(model, file);
  const session = await openSession(file);
  const outputs = await session.run(feeds);
  await session.release();
  return outputs[model.graph.outputs[0].name].data as Float32Array;
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function applyTo(file: string, spec: Spec, initialB?: (path: string, size: number) => Float32Array): PeftGraph {
  const model = loadModel(file);
  const discovery = discoverModules(model);
  const peft = applySpec(model, discovery, spec, { mode: "eval" });
  if (initialB) {
    for (const record of peft.lora) {
      const tensor = parameterTensor(peft, record.b);
      tensor.rebind({ kind: "array", array: initialB(record.path, tensor.size) });
    }
  }
  return peft;
}

function parameterTensor(peft: PeftGraph, name: string): Tensor {
  return peft.parameters.find((parameter) => parameter.name === name)!.tensor;
}

/** Feeds the trainable tensors' current values, which the graph takes as inputs. */
function parameterFeeds(peft: PeftGraph): Record<string, ort.Tensor> {
  return Object.fromEntries(peft.parameters.map((parameter) => [parameter.name, new ort.Tensor("float32", parameter.tensor.data() as Float32Array, parameter.shape)]));
}

/** Deterministic values in [-0.5, 0.5) keyed by a string, so tests do not depend on each other's order. */
function valuesFor(key: string, size: number, amplitude = 1): Float32Array {
  let state = [...key].reduce((hash, char) => Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0, 2166136261);
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32 - 0.5) * amplitude;
  });
}

describe("LoRA merge", () => {
  // A = [[1,0,0],[0,2,0]] (rank 2, in 3), B = identity (out 2), scale 1.
  const a = Float32Array.from([1, 0, 0, 0, 2, 0]);
  const b = Float32Array.from([1, 0, 0, 1]);
  const record = { inFeatures: 3, outFeatures: 2, rank: 2, scale: 1, part: null, qkv: null };

  test("golden delta in torch orientation", () => {
    expect([...loraDelta(a, b, 2, 3, 2, 1)]).toEqual([1, 0, 0, 0, 2, 0]);
  });

  test("golden merge in [out, in] layout", () => {
    const merged = mergeLora(new Float32Array(6), { ...record, layout: "out_in" }, a, b, 2);
    expect([...merged]).toEqual([1, 0, 0, 0, 2, 0]);
  });

  test("golden merge in [in, out] layout", () => {
    // Stored [in, out], so the same ΔW reads transposed: rows are inputs.
    const merged = mergeLora(new Float32Array(6), { ...record, layout: "in_out" }, a, b, 2);
    expect([...merged]).toEqual([1, 0, 0, 2, 0, 0]);
  });
});

describe("LoRA parameter counts", () => {
  test("GPT-2 small with r=8 on c_attn", () => {
    const model = buildGpt2({ ...GPT2_SMALL, weights: "zeros" });
    const base = countBaseParameters(model);
    expect(base).toBe(124_439_808);
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.qkv"), rank: 8 })] });
    const peft = applySpec(model, discoverModules(model), spec, { mode: "eval" });
    const summary = trainableSummary(base, peft.parameters);
    expect(summary.trainable).toBe(294_912);
    expect(summary.all).toBe(124_734_720);
    expect(summary.line).toBe("trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364");
  });

  test("GPT-2 small with r=8 on q and v inside c_attn", () => {
    const model = buildGpt2({ ...GPT2_SMALL, weights: "zeros" });
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 8 })] });
    const peft = applySpec(model, discoverModules(model), spec, { mode: "eval" });
    // Per layer and part: A 8 × 768 and B 768 × 8.
    expect(trainableSummary(countBaseParameters(model), peft.parameters).trainable).toBe(12 * 2 * 2 * 8 * 768);
    expect(peft.lora.map((record) => record.path).slice(0, 2)).toEqual(["layers.0.attn.q", "layers.0.attn.v"]);
  });
});

describe("LoRA on the fixtures", () => {
  test.each([...DECODERS, ...ENCODERS])("zero B leaves %s unchanged", async (name) => {
    const dir = makeTempDir();
    const file = path.join(FIXTURES, name);
    const base = loadModel(file);
    const feeds = batchFeeds(base);
    const before = await run(base, dir, "base.onnx", feeds);
    const peft = applyTo(file, defineSpec({ methods: [lora({ targets: select.allLinear(), rank: 4 })] }));
    expect(peft.lora.length).toBeGreaterThan(0);
    const after = await run(peft.model, dir, "lora.onnx", { ...feeds, ...parameterFeeds(peft) });
    // Adding an exact zero changes no bit.
    expect(maxDifference(before, after)).toBe(0);
  });

  test.each([
    ["gpt2-tiny-op17.onnx", select.role("attn.q", "attn.v", "mlp.down")],
    ["gpt2-tiny-op14.onnx", select.role("attn.k")],
    ["llama-tiny.onnx", select.allLinear()],
    ["bert-tiny-op17.onnx", select.allLinear()],
  ])("merged equals unmerged on %s", async (name, targets) => {
    const dir = makeTempDir();
    const file = path.join(FIXTURES, name);
    const peft = applyTo(file, defineSpec({ methods: [lora({ targets, rank: 4, alpha: 8 })] }), (key, size) => valuesFor(key, size, 0.2));
    const feeds = batchFeeds(peft.model);
    const adapted = await run(peft.model, dir, "lora.onnx", { ...feeds, ...parameterFeeds(peft) });

    const merged = loadModel(file);
    for (const record of peft.lora) {
      const weight = merged.graph.initializers.get(record.weight)!.initializer!;
      const a = parameterTensor(peft, record.a).data() as Float32Array;
      const b = parameterTensor(peft, record.b).data() as Float32Array;
      const fusedOut = weight.size / record.inFeatures;
      const values = mergeLora(weight.data() as Float32Array, record, a, b, fusedOut);
      weight.rebind({ kind: "array", array: values });
    }
    const reference = await run(merged, dir, "merged.onnx", feeds);
    // Both sides compute in float32; the merged weight rounds once per element, the branch once per matmul.
    expect(maxDifference(adapted, reference)).toBeLessThan(1e-4);
    const base = await run(loadModel(file), dir, "base.onnx", feeds);
    expect(maxDifference(adapted, base)).toBeGreaterThan(1e-3);
  });

  test("part LoRA touches only its rows", () => {
    const peft = applyTo(path.join(FIXTURES, "gpt2-tiny-op17.onnx"), defineSpec({ methods: [lora({ targets: select.role("attn.k"), rank: 2 })] }));
    expect(peft.lora.map((record) => [record.path, record.module, record.part, record.outFeatures])).toEqual([
      ["layers.0.attn.k", "layers.0.attn.qkv", "k", 64],
      ["layers.1.attn.k", "layers.1.attn.qkv", "k", 64],
    ]);
  });
});

describe("LoRA options", () => {
  const file = path.join(FIXTURES, "llama-tiny.onnx");

  test("rankPattern and alphaPattern override per module", () => {
    const spec = defineSpec({
      methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8, rankPattern: { "layers.1.**": 2, "layers.9.**": 16 }, alphaPattern: { "layers.0.attn.v": 1 } })],
    });
    const peft = applyTo(file, spec);
    expect(peft.warnings.map((warning) => warning.message)).toEqual([expect.stringMatching(/rankPattern key "layers.9.\*\*" matches none/)]);
    const byPath = Object.fromEntries(peft.lora.map((record) => [record.path, [record.rank, record.alpha, record.scale]]));
    expect(byPath).toEqual({ "layers.0.attn.q": [4, 8, 2], "layers.0.attn.v": [4, 1, 0.25], "layers.1.attn.q": [2, 8, 4], "layers.1.attn.v": [2, 8, 4] });
  });

  test("rsLora scales by alpha over sqrt(r)", () => {
    const peft = applyTo(file, defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank: 4, alpha: 8, rsLora: true })] }));
    expect(peft.lora[0].scale).toBe(4);
  });

  test("kaiming init is bounded and B starts at zero", () => {
    const peft = applyTo(file, defineSpec({ methods: [lora({ targets: select.role("attn.o"), rank: 4 })] }));
    const a = peft.parameters.find((parameter) => parameter.name === "layers.0.attn.o.lora_A")!;
    const values = a.tensor.data() as Float32Array;
    const bound = 1 / Math.sqrt(64);
    expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    const b = peft.parameters.find((parameter) => parameter.name === "layers.0.attn.o.lora_B")!;
    expect((b.tensor.data() as Float32Array).every((value) => value === 0)).toBe(true);
  });

  test("gaussian init has std 1/r", () => {
    const peft = applyTo(file, defineSpec({ methods: [lora({ targets: select.role("mlp.up"), rank: 4, init: "gaussian" })] }));
    const values = peft.parameters.find((parameter) => parameter.name === "layers.0.mlp.up.lora_A")!.tensor.data() as Float32Array;
    const std = Math.sqrt(values.reduce((sum, value) => sum + value * value, 0) / values.length);
    // 256 samples: the sample std is within about 10% of 0.25.
    expect(std).toBeGreaterThan(0.2);
    expect(std).toBeLessThan(0.3);
  });

  test("same seed gives the same A, another seed another", () => {
    const draw = (seed: number): Float32Array => applyTo(file, defineSpec({ methods: [lora({ targets: select.role("attn.q") })], seed })).parameters[0].tensor.data() as Float32Array;
    expect([...draw(1)]).toEqual([...draw(1)]);
    expect([...draw(1)]).not.toEqual([...draw(2)]);
  });

  test("rank larger than the layer is rejected", () => {
    expect(() => applyTo(file, defineSpec({ methods: [lora({ targets: select.role("attn.k"), rank: 64 })] }))).toThrow(/at most 32/);
  });

  test("two LoRAs on one module are rejected", () => {
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.q") }), lora({ targets: "layers.0.attn.q" })] });
    expect(() => applyTo(file, spec)).toThrow(/already adapted/);
  });

  test("whole fused module and its part conflict", () => {
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.qkv") }), lora({ targets: select.role("attn.q") })] });
    expect(() => applyTo(path.join(FIXTURES, "gpt2-tiny-op17.onnx"), spec)).toThrow(/already adapted/);
  });

  test("bias all unfreezes every bias", () => {
    const peft = applyTo(path.join(FIXTURES, "gpt2-tiny-op17.onnx"), defineSpec({ methods: [lora({ targets: select.role("attn.qkv"), bias: "all" })] }));
    const biases = peft.parameters.filter((parameter) => parameter.method === "bias");
    expect(biases.length).toBeGreaterThan(10);
    expect(biases.every((parameter) => parameter.name.endsWith(".bias"))).toBe(true);
    for (const parameter of biases) {
      expect(peft.model.graph.inputs.some((input) => input.name === parameter.name)).toBe(true);
      expect(peft.model.graph.initializers.has(parameter.name)).toBe(false);
    }
  });

  test("bias lora_only unfreezes the adapted layers' biases", () => {
    const peft = applyTo(path.join(FIXTURES, "gpt2-tiny-op17.onnx"), defineSpec({ methods: [lora({ targets: select.role("attn.qkv"), bias: "lora_only" })] }));
    expect(peft.parameters.filter((parameter) => parameter.method === "bias").map((parameter) => parameter.name)).toEqual([
      "transformer.h.0.attn.c_attn.bias",
      "transformer.h.1.attn.c_attn.bias",
    ]);
  });

  test("train selector unfreezes a tied embedding once", () => {
    const peft = applyTo(path.join(FIXTURES, "gpt2-tiny-op17.onnx"), defineSpec({ methods: [lora({ targets: select.role("attn.qkv"), train: select.role("embed.tokens", "head") })] }));
    const trained = peft.parameters.filter((parameter) => parameter.method === "train");
    expect(trained.map((parameter) => parameter.name)).toEqual(["transformer.wte.weight"]);
  });
});

describeCorpus("LoRA on aidreams260K", () => {
  const dir = path.join(CORPUS_DIR, "aidreams260K");
  const reference = (): {
    values: Record<string, number[][]>;
    input_ids: number[][];
    attention_mask: number[][];
    labels: number[][];
    lengths: number[];
    logits_first8: number[][][];
    loss: number;
    trainable_params: number;
    total_params: number;
    trainable_percent: number;
  } => JSON.parse(fs.readFileSync(path.join(dir, "reference", "lora_grad.json"), "utf8"));
  const spec = defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8 })] });

  test("counts equal the reference", () => {
    const model = loadModel(path.join(dir, "model_nofold.onnx"));
    const base = countBaseParameters(model);
    const peft = applySpec(model, discoverModules(model), spec, { mode: "eval" });
    const summary = trainableSummary(base, peft.parameters);
    const expected = reference();
    expect(base).toBe(230_976);
    expect(summary.trainable).toBe(expected.trainable_params);
    expect(summary.all).toBe(expected.total_params);
    expect(summary.percent).toBeCloseTo(expected.trainable_percent, 10);
  });

  test.each(["model.onnx", "model_nofold.onnx"])("%s gives the reference logits and loss", async (name) => {
    const expected = reference();
    const model = loadModel(path.join(dir, name));
    const initial = new Map<string, { a: Float32Array; b: Float32Array }>();
    for (let layer = 0; layer < 4; layer++) {
      for (const part of ["q", "v"]) {
        const key = (matrix: string): string => `base_model.model.model.layers.${layer}.self_attn.${part}_proj.lora_${matrix}.default.weight`;
        initial.set(`layers.${layer}.attn.${part}`, { a: Float32Array.from(expected.values[key("A")].flat()), b: Float32Array.from(expected.values[key("B")].flat()) });
      }
    }
    const peft = applySpec(model, discoverModules(model), spec, { mode: "eval", initialLora: initial });
    const tempDir = makeTempDir();
    const feeds = {
      ...parameterFeeds(peft),
      input_ids: new ort.Tensor("int64", BigInt64Array.from(expected.input_ids.flat().map(BigInt)), [2, 12]),
      attention_mask: new ort.Tensor("int64", BigInt64Array.from(expected.attention_mask.flat().map(BigInt)), [2, 12]),
    };
    const logits = await run(model, tempDir, "lora.onnx", feeds);
    let worst = 0;
    for (let row = 0; row < 2; row++) {
      for (let t = 0; t < expected.lengths[row]; t++) {
        for (let k = 0; k < 8; k++) worst = Math.max(worst, Math.abs(logits[(row * 12 + t) * 512 + k] - expected.logits_first8[row][t][k]));
      }
    }
    // The reference's own ONNX exports match PyTorch within 5.5e-6; 1e-4 is its suggested logits tolerance.
    expect(worst).toBeLessThan(1e-4);

    let sum = 0;
    let count = 0;
    for (let row = 0; row < 2; row++) {
      for (let t = 0; t < 11; t++) {
        const label = expected.labels[row][t + 1];
        if (label === -100) continue;
        const scores = logits.subarray((row * 12 + t) * 512, (row * 12 + t + 1) * 512);
        const max = Math.max(...scores);
        const logSum = Math.log(scores.reduce((total, value) => total + Math.exp(value - max), 0)) + max;
        sum += logSum - scores[label];
        count++;
      }
    }
    expect(count).toBe(17);
    expect(Math.abs(sum / count - expected.loss) / expected.loss).toBeLessThan(1e-5);
  });
});

describe("LoRA branch in a GQA fused projection", () => {
  test("interleaved groups place each part on its rows", () => {
    const record = {
      layout: "out_in" as const,
      inFeatures: 2,
      outFeatures: 4,
      rank: 1,
      scale: 1,
      part: "k" as const,
      qkv: { layout: "interleaved" as const, order: ["q", "k", "v"] as ("q" | "k" | "v")[], widths: { q: 4, k: 2, v: 2 }, groups: 2, headDim: 2, message: null },
    };
    // Rows of part k: group 0 rows 4-5, group 1 rows 12-13 of the 16-row weight.
    const merged = mergeLora(new Float32Array(32), record, Float32Array.from([1, 0]), Float32Array.from([1, 2, 3, 4]), 16);
    const rows = Array.from({ length: 16 }, (_, row) => merged[row * 2]);
    expect(rows).toEqual([0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 3, 4, 0, 0]);
  });

  test("tensor dtype follows the base weight", () => {
    const model = loadModel(path.join(FIXTURES, "llama-tiny.onnx"));
    const weight = model.graph.initializers.get("model.layers.0.self_attn.q_proj.weight")!;
    weight.initializer!.rebind({ kind: "array", array: weight.initializer!.data() });
    expect(weight.initializer!.dtype).toBe(DataType.FLOAT);
    const peft = applySpec(model, discoverModules(model), defineSpec({ methods: [lora({ targets: select.role("attn.q") })] }), { mode: "eval" });
    expect(peft.parameters.every((parameter) => parameter.dtype === "float32")).toBe(true);
    expect(peft.parameters[0].tensor).toBeInstanceOf(Tensor);
  });
});

describeCorpus("LoRA on a packed attention weight", () => {
  test.each([
    ["whole", select.role("attn.qkv")],
    ["parts", select.role("attn.q", "attn.v")],
  ])("%s: merged equals unmerged on genai GPT-2", async (_name, targets) => {
    const file = path.join(CORPUS_DIR, "genai-gpt2-past-fused-fp32", "past.onnx");
    const peft = applyTo(file, defineSpec({ methods: [lora({ targets, rank: 2 })] }), (key, size) => valuesFor(key, size, 0.5));
    expect(peft.lora[0].layout).toBe("in_out");
    const dir = makeTempDir();
    saveModel(peft.model, path.join(dir, "lora.onnx"));
    const session = await openSession(path.join(dir, "lora.onnx"));
    const feeds = makeFeeds(session);
    const adapted = await session.run({ ...feeds, ...parameterFeeds(peft) });

    const merged = loadModel(file);
    for (const record of peft.lora) {
      const weight = merged.graph.initializers.get(record.weight)!.initializer!;
      const values = mergeLora(weight.data() as Float32Array, record, parameterTensor(peft, record.a).data() as Float32Array, parameterTensor(peft, record.b).data() as Float32Array, weight.size / record.inFeatures);
      weight.rebind({ kind: "array", array: values });
    }
    saveModel(merged, path.join(dir, "merged.onnx"));
    const reference = await openSession(path.join(dir, "merged.onnx"));
    const baseFeeds = Object.fromEntries(reference.inputNames.map((name) => [name, feeds[name]]));
    const expected = await reference.run(baseFeeds);
    expect(maxAbsDifference(adapted, expected)).toBeLessThan(1e-4);
    const base = await openSession(file);
    expect(maxAbsDifference(adapted, await base.run(baseFeeds))).toBeGreaterThan(1e-3);
    await session.release();
    await reference.release();
    await base.release();
  });
});

describeCorpus("folded tied head", () => {
  test("training the embedding reties the head's copy", async () => {
    const dir = path.join(CORPUS_DIR, "aidreams260K");
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.q"), train: select.role("embed.tokens") })] });
    const folded = applyTo(path.join(dir, "model.onnx"), spec);
    expect(folded.warnings.map((warning) => warning.message)).toEqual(expect.arrayContaining([expect.stringMatching(/head now reads the trained embedding/)]));
    const head = folded.model.graph.nodes.find((node) => node.name === "/lm_head/MatMul")!;
    expect(head.inputs[1]!.producer!.opType).toBe("Transpose");
    expect(head.inputs[1]!.producer!.inputs[0]!.name).toBe("model.embed_tokens.weight");
    // The same logits as before, now from one tensor.
    const feeds = { input_ids: new ort.Tensor("int64", BigInt64Array.of(1n, 388n, 355n), [1, 3]), attention_mask: new ort.Tensor("int64", BigInt64Array.of(1n, 1n, 1n), [1, 3]) };
    const temp = makeTempDir();
    const retied = await run(folded.model, temp, "retied.onnx", { ...feeds, ...parameterFeeds(folded) });
    const base = await run(loadModel(path.join(dir, "model.onnx")), temp, "base.onnx", feeds);
    expect(maxDifference(retied, base)).toBeLessThan(1e-5);
  });
});
