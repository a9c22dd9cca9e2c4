import * as fs from "node:fs";
import * as path from "node:path";
import { type PeftAdapterInput, readPeftAdapter, resolveRankAndAlpha, writePeftAdapter } from "../../../compiler/emit/peft-adapter";
import { readSafetensors, writeSafetensors } from "../../../compiler/emit/safetensors";
import { isPeftcError } from "../../../compiler/errors";
import type { QkvLayout, QkvPart } from "../../../compiler/match/fused-qkv";
import type { LoraRecord } from "../../../compiler/methods/parameters";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { CORPUS_DIR, describeCorpus } from "../../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

function errorOf(action: () => unknown): { code?: string; message: string } {
  try {
    action();
  } catch (error) {
    return { code: isPeftcError(error) ? error.code : undefined, message: (error as Error).message };
  }
  throw new Error("expected an error");
}

/** Deterministic pseudo-random values in [-1, 1) (a linear congruential generator). */
function randomValues(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

interface RecordOptions {
  inFeatures?: number;
  outFeatures?: number;
  rank?: number;
  alpha?: number;
  rsLora?: boolean;
  layout?: "in_out" | "out_in";
  part?: QkvPart | null;
  qkv?: QkvLayout | null;
}

function loraRecord(torchName: string, options: RecordOptions = {}): LoraRecord {
  const rank = options.rank ?? 2;
  const alpha = options.alpha ?? 4;
  const rsLora = options.rsLora ?? false;
  const part = options.part ?? null;
  const target = part === null ? torchName : `${torchName}:${part}`;
  return {
    path: target,
    module: torchName,
    torchName,
    part,
    layout: options.layout ?? "out_in",
    weight: `${torchName}.weight`,
    inFeatures: options.inFeatures ?? 4,
    outFeatures: options.outFeatures ?? 6,
    rank,
    alpha,
    rsLora,
    scale: rsLora ? alpha / Math.sqrt(rank) : alpha / rank,
    dropout: 0,
    a: `${target}.lora_A`,
    b: `${target}.lora_B`,
    qkv: options.qkv ?? null,
    gate: null,
  };
}

/** Random A and B values for each record, keyed by parameter name. */
function valuesFor(records: LoraRecord[]): Map<string, Float32Array> {
  const tensors = new Map<string, Float32Array>();
  records.forEach((record, i) => {
    tensors.set(record.a, randomValues(record.rank * record.inFeatures, 2 * i + 1));
    tensors.set(record.b, randomValues(record.outFeatures * record.rank, 2 * i + 2));
  });
  return tensors;
}

function readConfig(dir: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
}

/** y = M · x for M stored row-major as [rows, cols]. */
function matVec(matrix: ArrayLike<number>, rows: number, cols: number, x: ArrayLike<number>): number[] {
  return Array.from({ length: rows }, (_, i) => {
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += matrix[i * cols + j] * x[j];
    return sum;
  });
}

const LLAMA_NAMES = [0, 1].flatMap((layer) => ["q_proj", "k_proj", "v_proj", "o_proj"].map((name) => `model.layers.${layer}.self_attn.${name}`));

describe("writePeftAdapter", () => {
  it("writes PEFT key names and shapes", () => {
    const records = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"].map((name) => loraRecord(name));
    const dir = path.join(makeTempDir(), "adapter");
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records) });

    const { tensors, metadata } = readSafetensors(path.join(dir, "adapter_model.safetensors"));
    expect([...tensors.keys()]).toEqual([
      "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
      "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
    ]);
    expect(tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")!.dims).toEqual([2, 4]);
    expect(tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")!.dims).toEqual([6, 2]);
    expect(metadata).toEqual({ format: "pt" });
  });

  it("writes the LoraConfig fields", () => {
    const records = ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"].map((name) => loraRecord(name, { rank: 4, alpha: 8 }));
    const dir = makeTempDir();
    writePeftAdapter(dir, {
      lora: records,
      tensors: valuesFor(records),
      baseModel: "org/model",
      defaults: { dropout: 0.05, bias: "lora_only", modulesToSave: ["score", "classifier"], init: "gaussian" },
    });
    const config = readConfig(dir);
    expect(config).toEqual({
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: "org/model",
      bias: "lora_only",
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: "gaussian",
      layer_replication: null,
      layers_pattern: null,
      layers_to_transform: null,
      loftq_config: {},
      lora_alpha: 8,
      lora_dropout: 0.05,
      megatron_config: null,
      megatron_core: "megatron.core",
      modules_to_save: ["classifier", "score"],
      peft_type: "LORA",
      r: 4,
      rank_pattern: {},
      revision: null,
      target_modules: ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"],
      task_type: "CAUSAL_LM",
      use_dora: false,
      use_rslora: false,
    });
    expect(Object.keys(config)).toEqual(Object.keys(config).sort());
  });

  it("maps peftc's kaiming init to PEFT's default", () => {
    const records = [loraRecord("model.q")];
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records), defaults: { init: "kaiming" } });
    expect(readConfig(dir).init_lora_weights).toBe(true);
  });

  it("lists module suffixes when they select only adapted modules", () => {
    const names = LLAMA_NAMES.filter((name) => name.endsWith("q_proj") || name.endsWith("v_proj"));
    const records = names.map((name) => loraRecord(name));
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records), moduleNames: LLAMA_NAMES });
    expect(readConfig(dir).target_modules).toEqual(["q_proj", "v_proj"]);
  });

  it("lists full names when suffixes would select more", () => {
    const records = [loraRecord("model.layers.0.self_attn.q_proj")];
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records), moduleNames: LLAMA_NAMES });
    expect(readConfig(dir).target_modules).toEqual(["model.layers.0.self_attn.q_proj"]);
  });

  it("writes rank_pattern and alpha_pattern for uncommon values", () => {
    const records = [
      loraRecord("model.layers.0.self_attn.q_proj", { rank: 2, alpha: 4 }),
      loraRecord("model.layers.1.self_attn.q_proj", { rank: 2, alpha: 4 }),
      loraRecord("model.layers.10.self_attn.q_proj", { rank: 3, alpha: 4 }),
      loraRecord("model.layers.11.self_attn.q_proj", { rank: 2, alpha: 5 }),
    ];
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records) });
    const config = readConfig(dir);
    expect(config.r).toBe(2);
    expect(config.lora_alpha).toBe(4);
    expect(config.rank_pattern).toEqual({ "layers.10.self_attn.q_proj": 3 });
    expect(config.alpha_pattern).toEqual({ "layers.11.self_attn.q_proj": 5 });

    const adapter = readPeftAdapter(dir);
    expect(adapter.modules.get("model.layers.1.self_attn.q_proj")!.rank).toBe(2);
    expect(adapter.modules.get("model.layers.10.self_attn.q_proj")!.rank).toBe(3);
    expect(adapter.modules.get("model.layers.11.self_attn.q_proj")!.alpha).toBe(5);
    expect(adapter.modules.get("model.layers.11.self_attn.q_proj")!.rank).toBe(2);
  });

  it("keys patterns by full name when a shorter key would match another module", () => {
    const records = [loraRecord("encoder.q", { rank: 3 }), loraRecord("decoder.q", { rank: 3 }), loraRecord("a.b", { rank: 2 }), loraRecord("c.d", { rank: 2 }), loraRecord("e.f", { rank: 2 })];
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records) });
    expect(readConfig(dir).rank_pattern).toEqual({ "decoder.q": 3, "encoder.q": 3 });
  });

  it("prefers the spec's rank when ranks tie", () => {
    const records = [loraRecord("m.a", { rank: 2, alpha: 4 }), loraRecord("m.b", { rank: 3, alpha: 6 })];
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records), defaults: { rank: 3, alpha: 6 } });
    const config = readConfig(dir);
    expect(config.r).toBe(3);
    expect(config.lora_alpha).toBe(6);
    expect(config.rank_pattern).toEqual({ a: 2 });
  });

  it("sets fan_in_fan_out for Conv1D weights", () => {
    const records = ["transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj"].map((name) => loraRecord(name, { layout: "in_out" }));
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records) });
    expect(readConfig(dir).fan_in_fan_out).toBe(true);
    const adapter = readPeftAdapter(dir);
    expect(adapter.modules.get("transformer.h.0.attn.c_proj")!.fanInFanOut).toBe(true);
    expect(adapter.modules.get("transformer.h.0.attn.c_proj")!.a.dims).toEqual([2, 4]);
  });

  it("rejects mixed weight layouts", () => {
    const records = [loraRecord("m.a", { layout: "in_out" }), loraRecord("m.b", { layout: "out_in" })];
    const error = errorOf(() => writePeftAdapter(makeTempDir(), { lora: records, tensors: valuesFor(records) }));
    expect(error.code).toBe("E_ADAPTER");
    expect(error.message).toContain("fan_in_fan_out");
  });

  it("expresses mixed rsLora with per-module alpha", () => {
    const records = [
      loraRecord("m.a", { rank: 4, alpha: 8, rsLora: true }),
      loraRecord("m.b", { rank: 4, alpha: 8, rsLora: true }),
      loraRecord("m.c", { rank: 4, alpha: 8, rsLora: false }),
    ];
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records) });
    const adapter = readPeftAdapter(dir);
    expect(adapter.config.use_rslora).toBe(true);
    expect(adapter.modules.get("m.a")!.scale).toBeCloseTo(4, 12);
    expect(adapter.modules.get("m.c")!.scale).toBeCloseTo(2, 12);
  });

  it("rejects an empty branch list", () => {
    expect(errorOf(() => writePeftAdapter(makeTempDir(), { lora: [], tensors: new Map() })).code).toBe("E_ADAPTER");
  });

  it("rejects missing or misshapen values", () => {
    const record = loraRecord("m.a");
    const missing = errorOf(() => writePeftAdapter(makeTempDir(), { lora: [record], tensors: new Map([[record.a, new Float32Array(8)]]) }));
    expect(missing.code).toBe("E_ADAPTER");
    expect(missing.message).toContain(record.b);

    const short = errorOf(() => writePeftAdapter(makeTempDir(), { lora: [record], tensors: new Map([[record.a, new Float32Array(3)], [record.b, new Float32Array(12)]]) }));
    expect(short.code).toBe("E_ADAPTER");

    const wrongShape = new Map<string, Tensor | Float32Array>([
      [record.a, Tensor.fromArray(record.a, DataType.FLOAT, [4, 2], new Float32Array(8))],
      [record.b, new Float32Array(12)],
    ]);
    expect(errorOf(() => writePeftAdapter(makeTempDir(), { lora: [record], tensors: wrongShape })).message).toContain("[4, 2]");
  });

  it("accepts float16 tensors and writes float32", () => {
    const record = loraRecord("m.a");
    const tensors = new Map<string, Tensor>([
      [record.a, Tensor.fromArray(record.a, DataType.FLOAT16, [2, 4], Float32Array.from({ length: 8 }, (_, i) => i / 4))],
      [record.b, Tensor.fromArray(record.b, DataType.FLOAT16, [6, 2], Float32Array.from({ length: 12 }, (_, i) => -i / 2))],
    ]);
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: [record], tensors });
    const module = readPeftAdapter(dir).modules.get("m.a")!;
    expect(module.a.dtype).toBe(DataType.FLOAT);
    expect(module.a.numbers()).toEqual(Array.from({ length: 8 }, (_, i) => i / 4));
  });
});

describe("adapter folder handling", () => {
  const records = [loraRecord("m.a")];

  it("rejects a non-empty folder that is not an adapter folder", () => {
    const dir = makeTempDir();
    fs.writeFileSync(path.join(dir, "notes.txt"), "keep me");
    const error = errorOf(() => writePeftAdapter(dir, { lora: records, tensors: valuesFor(records) }));
    expect(error.code).toBe("E_OUTPUT_PATH");
    expect(fs.readdirSync(dir)).toEqual(["notes.txt"]);
  });

  it("rejects a file as the folder", () => {
    const file = path.join(makeTempDir(), "file");
    fs.writeFileSync(file, "");
    expect(errorOf(() => writePeftAdapter(file, { lora: records, tensors: valuesFor(records) })).code).toBe("E_OUTPUT_PATH");
  });

  it("replaces an earlier adapter and leaves no temporary files", () => {
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records) });
    const other = new Map([...valuesFor(records)].map(([name, values]) => [name, values.map((value) => value * 2)]));
    writePeftAdapter(dir, { lora: records, tensors: other });
    expect(fs.readdirSync(dir).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
    expect(readPeftAdapter(dir).modules.get("m.a")!.b.numbers()).toEqual(Array.from(other.get(records[0].b)!));
  });

  it("writes byte-identical folders for the same input", () => {
    const [first, second] = [makeTempDir(), makeTempDir()];
    const tensors = valuesFor(records);
    writePeftAdapter(first, { lora: records, tensors });
    writePeftAdapter(second, { lora: records, tensors });
    for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
      expect(fs.readFileSync(path.join(first, file)).equals(fs.readFileSync(path.join(second, file)))).toBe(true);
    }
  });
});

describe("adapter round trip", () => {
  it("reads back what it wrote", () => {
    const records = LLAMA_NAMES.map((name, i) => loraRecord(name, { rank: 2 + (i % 2), alpha: 4, inFeatures: 5, outFeatures: 3 }));
    const tensors = valuesFor(records);
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors, moduleNames: LLAMA_NAMES });

    const adapter = readPeftAdapter(dir);
    expect([...adapter.modules.keys()]).toEqual([...LLAMA_NAMES].sort());
    for (const record of records) {
      const module = adapter.modules.get(record.torchName)!;
      expect([record.torchName, module.rank, module.alpha, module.scale]).toEqual([record.torchName, record.rank, record.alpha, record.scale]);
      expect(module.a.dims).toEqual([record.rank, 5]);
      expect(module.b.dims).toEqual([3, record.rank]);
      expect(module.a.numbers()).toEqual(Array.from(tensors.get(record.a)!));
      expect(module.b.numbers()).toEqual(Array.from(tensors.get(record.b)!));
    }
    expect(adapter.modulesToSave).toBeNull();
    expect(adapter.otherTensors.size).toBe(0);
  });

  it("returns extra tensors without the prefix", () => {
    const records = [loraRecord("m.a")];
    const bias = Tensor.fromArray("m.a.bias", DataType.FLOAT, [6], new Float32Array(6).fill(0.5));
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records), extraTensors: new Map([["m.a.bias", bias]]), defaults: { bias: "lora_only" } });
    const adapter = readPeftAdapter(dir);
    expect([...adapter.otherTensors.keys()]).toEqual(["m.a.bias"]);
    expect(adapter.config.bias).toBe("lora_only");
  });
});

/**
 * Checks that the exported fused LoRA gives, for a random x, the same
 * output rows as the parts' own LoRA deltas placed on their rows:
 * sum over parts of s_p · B_p · A_p · x equals s · B · A · x.
 */
function expectEquivalentFusedUpdate(records: LoraRecord[], tensors: Map<string, Float32Array>, rowOf: (record: LoraRecord, row: number) => number, fusedRows: number, rsLora: boolean): void {
  const dir = makeTempDir();
  const written = writePeftAdapter(dir, { lora: records, tensors });
  const adapter = readPeftAdapter(dir);
  const torchName = records[0].torchName;
  const module = adapter.modules.get(torchName)!;
  const totalRank = records.reduce((sum, record) => sum + record.rank, 0);
  const inFeatures = records[0].inFeatures;

  expect(module.rank).toBe(totalRank);
  expect(module.a.dims).toEqual([totalRank, inFeatures]);
  expect(module.b.dims).toEqual([fusedRows, totalRank]);
  expect(module.scale).toBeCloseTo(module.alpha / (rsLora ? Math.sqrt(totalRank) : totalRank), 12);
  const rowOrder = (part: QkvPart | null): number => (records[0].qkv!.order ?? []).indexOf(part!);
  expect(written.modules[0].parts).toEqual(records.map((record) => record.part).sort((x, y) => rowOrder(x) - rowOrder(y)));

  const x = randomValues(inFeatures, 99);
  const expected = new Array<number>(fusedRows).fill(0);
  for (const record of records) {
    const hidden = matVec(tensors.get(record.a)!, record.rank, inFeatures, x);
    const delta = matVec(tensors.get(record.b)!, record.outFeatures, record.rank, hidden);
    delta.forEach((value, row) => (expected[rowOf(record, row)] += record.scale * value));
  }
  const hidden = matVec(module.a.data() as Float32Array, totalRank, inFeatures, x);
  const actual = matVec(module.b.data() as Float32Array, fusedRows, totalRank, hidden).map((value) => module.scale * value);
  // B is stored as float32 after multiplying by a part's scale ratio, so allow float32 rounding of each term.
  actual.forEach((value, row) => expect([row, value]).toEqual([row, expect.closeTo(expected[row], 5)]));
  expect(expected.some((value) => value !== 0)).toBe(true);
}

describe("fused QKV parts", () => {
  const inFeatures = 5;

  it("exports contiguous parts as one equivalent LoRA", () => {
    const qkv: QkvLayout = { layout: "contiguous", order: ["q", "k", "v"], widths: { q: 4, k: 2, v: 2 }, groups: null, headDim: null, message: null };
    const records = [
      loraRecord("transformer.h.0.attn.qkv", { part: "v", qkv, rank: 3, alpha: 6, inFeatures, outFeatures: 2 }),
      loraRecord("transformer.h.0.attn.qkv", { part: "q", qkv, rank: 2, alpha: 8, inFeatures, outFeatures: 4 }),
    ];
    const offsets: Record<QkvPart, number> = { q: 0, k: 4, v: 6 };
    expectEquivalentFusedUpdate(records, valuesFor(records), (record, row) => offsets[record.part!] + row, 8, false);
  });

  it("exports contiguous parts in a non-default order", () => {
    const qkv: QkvLayout = { layout: "contiguous", order: ["k", "v", "q"], widths: { q: 2, k: 2, v: 2 }, groups: null, headDim: null, message: null };
    const records = (["q", "k", "v"] as QkvPart[]).map((part) => loraRecord("m.qkv", { part, qkv, rank: 2, alpha: 4, inFeatures, outFeatures: 2 }));
    const offsets: Record<QkvPart, number> = { k: 0, v: 2, q: 4 };
    const reordered = [records[1], records[2], records[0]];
    expectEquivalentFusedUpdate(reordered, valuesFor(reordered), (record, row) => offsets[record.part!] + row, 6, false);
  });

  it("exports interleaved parts as one equivalent LoRA", () => {
    // 2 groups, head_dim 2; each group contains its q, k and v rows: [q0 q0 k0 k0 v0 v0 q1 q1 k1 k1 v1 v1].
    const qkv: QkvLayout = { layout: "interleaved", order: ["q", "k", "v"], widths: { q: 2, k: 2, v: 2 }, groups: 2, headDim: 2, message: null };
    const records = (["q", "k", "v"] as QkvPart[]).map((part, i) => loraRecord("h.0.self_attention.query_key_value", { part, qkv, rank: 1 + i, alpha: 4 + i, inFeatures, outFeatures: 4 }));
    const partOffset: Record<QkvPart, number> = { q: 0, k: 2, v: 4 };
    const rowOf = (record: LoraRecord, row: number): number => Math.floor(row / 2) * 6 + partOffset[record.part!] + (row % 2);
    expectEquivalentFusedUpdate(records, valuesFor(records), rowOf, 12, false);
  });

  it("exports interleaved parts of unequal widths with rsLora", () => {
    // Grouped-query layout: each of 2 groups contains 4 q rows, then 2 k rows, then 2 v rows.
    const qkv: QkvLayout = { layout: "interleaved", order: ["q", "k", "v"], widths: { q: 4, k: 2, v: 2 }, groups: 2, headDim: 2, message: null };
    const records = [
      loraRecord("m.qkv", { part: "q", qkv, rank: 2, alpha: 8, rsLora: true, inFeatures, outFeatures: 8 }),
      loraRecord("m.qkv", { part: "v", qkv, rank: 2, alpha: 8, rsLora: true, inFeatures, outFeatures: 4 }),
    ];
    const partOffset: Record<QkvPart, number> = { q: 0, k: 4, v: 6 };
    const width: Record<QkvPart, number> = { q: 4, k: 2, v: 2 };
    const rowOf = (record: LoraRecord, row: number): number => Math.floor(row / width[record.part!]) * 8 + partOffset[record.part!] + (row % width[record.part!]);
    expectEquivalentFusedUpdate(records, valuesFor(records), rowOf, 16, true);
  });

  it("keeps B unchanged and scales alpha when parts share a scale", () => {
    const qkv: QkvLayout = { layout: "contiguous", order: ["q", "k", "v"], widths: { q: 2, k: 2, v: 2 }, groups: null, headDim: null, message: null };
    const records = (["q", "v"] as QkvPart[]).map((part) => loraRecord("m.qkv", { part, qkv, rank: 3, alpha: 5, inFeatures, outFeatures: 2 }));
    const tensors = valuesFor(records);
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors });
    const config = readConfig(dir);
    expect(config.r).toBe(6);
    expect(config.lora_alpha).toBe(10);
    // Rows 0 and 1 are q's: its B [2, 3] sits in rank columns 0 to 2 of the fused B [6, 6].
    const b = readPeftAdapter(dir).modules.get("m.qkv")!.b.numbers();
    const partB = Array.from(tensors.get(records[0].b)!);
    expect(b.slice(0, 3)).toEqual(partB.slice(0, 3));
    expect(b.slice(6, 9)).toEqual(partB.slice(3, 6));
  });

  it("uses rank_pattern for a fused module beside plain ones", () => {
    const qkv: QkvLayout = { layout: "contiguous", order: ["q", "k", "v"], widths: { q: 2, k: 2, v: 2 }, groups: null, headDim: null, message: null };
    const records = [
      loraRecord("model.layers.0.attn.qkv", { part: "q", qkv, rank: 2, alpha: 4, inFeatures, outFeatures: 2 }),
      loraRecord("model.layers.0.attn.qkv", { part: "v", qkv, rank: 2, alpha: 4, inFeatures, outFeatures: 2 }),
      loraRecord("model.layers.0.attn.out", { rank: 2, alpha: 4, inFeatures, outFeatures: 6 }),
      loraRecord("model.layers.1.attn.out", { rank: 2, alpha: 4, inFeatures, outFeatures: 6 }),
    ];
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors: valuesFor(records) });
    const config = readConfig(dir);
    expect(config.r).toBe(2);
    expect(config.rank_pattern).toEqual({ "layers.0.attn.qkv": 4 });
    expect(config.alpha_pattern).toEqual({ "layers.0.attn.qkv": 8 });
    expect(readPeftAdapter(dir).modules.get("model.layers.0.attn.qkv")!.scale).toBe(2);
  });

  it("rejects an ambiguous layout", () => {
    const qkv: QkvLayout = { layout: "ambiguous", order: null, widths: null, groups: null, headDim: null, message: "no Split divides the output" };
    const records = [loraRecord("m.qkv", { part: "q", qkv })];
    const error = errorOf(() => writePeftAdapter(makeTempDir(), { lora: records, tensors: valuesFor(records) }));
    expect(error.code).toBe("E_ADAPTER");
    expect(error.message).toContain("no Split divides the output");
  });

  it("rejects a part whose rows disagree with the layout", () => {
    const qkv: QkvLayout = { layout: "contiguous", order: ["q", "k", "v"], widths: { q: 2, k: 2, v: 2 }, groups: null, headDim: null, message: null };
    const records = [loraRecord("m.qkv", { part: "q", qkv, outFeatures: 3 })];
    expect(errorOf(() => writePeftAdapter(makeTempDir(), { lora: records, tensors: valuesFor(records) })).code).toBe("E_ADAPTER");
  });

  it("rejects a whole-module branch beside a part", () => {
    const qkv: QkvLayout = { layout: "contiguous", order: ["q", "k", "v"], widths: { q: 2, k: 2, v: 2 }, groups: null, headDim: null, message: null };
    const records = [loraRecord("m.qkv", { part: "q", qkv, outFeatures: 2 }), loraRecord("m.qkv", { outFeatures: 6 })];
    expect(errorOf(() => writePeftAdapter(makeTempDir(), { lora: records, tensors: valuesFor(records) })).code).toBe("E_ADAPTER");
  });
});

/** Writes an adapter folder by hand: a config and the given tensors. */
function handAdapter(config: Record<string, unknown>, tensors: Record<string, [number[], number[]]>): string {
  const dir = makeTempDir();
  fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify(config));
  const map = new Map(Object.entries(tensors).map(([key, [dims, values]]) => [key, Tensor.fromArray(key, DataType.FLOAT, dims, Float32Array.from(values))]));
  writeSafetensors(path.join(dir, "adapter_model.safetensors"), map);
  return dir;
}

const BASE_CONFIG = { peft_type: "LORA", r: 1, lora_alpha: 2, target_modules: ["q_proj"] };
const A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
const B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
const GOOD: Record<string, [number[], number[]]> = { [A]: [[1, 2], [1, 2]], [B]: [[3, 1], [3, 4, 5]] };

describe("readPeftAdapter", () => {
  it("accepts keys with an adapter name and without the prefix", () => {
    const dir = handAdapter(BASE_CONFIG, {
      "model.layers.0.self_attn.q_proj.lora_A.default.weight": [[1, 2], [1, 2]],
      "model.layers.0.self_attn.q_proj.lora_B.default.weight": [[3, 1], [3, 4, 5]],
    });
    const module = readPeftAdapter(dir).modules.get("model.layers.0.self_attn.q_proj")!;
    expect(module.rank).toBe(1);
    expect(module.scale).toBe(2);
    expect(module.b.numbers()).toEqual([3, 4, 5]);
  });

  it("accepts default values of fields it does not apply", () => {
    const config = { ...BASE_CONFIG, layers_to_transform: null, layers_pattern: "layers", exclude_modules: [], modules_to_save: null, trainable_token_indices: null, target_parameters: [] };
    const adapter = readPeftAdapter(handAdapter(config, GOOD));
    expect([...adapter.modules.keys()]).toEqual(["model.layers.0.self_attn.q_proj"]);
  });

  it("fills defaults for optional config fields", () => {
    const adapter = readPeftAdapter(handAdapter(BASE_CONFIG, GOOD));
    expect(adapter.config.use_rslora).toBe(false);
    expect(adapter.config.rank_pattern).toEqual({});
    expect(adapter.config.fan_in_fan_out).toBe(false);
    expect(adapter.modulesToSave).toBeNull();
  });

  it("resolves rank_pattern as PEFT does: first matching key wins", () => {
    const config = { r: 8, lora_alpha: 16, rank_pattern: { q_proj: 4, "layers.0.self_attn.q_proj": 2 }, alpha_pattern: { "layers.0.self_attn.q_proj": 3 } };
    expect(resolveRankAndAlpha(config, "model.layers.0.self_attn.q_proj")).toEqual({ rank: 4, alpha: 16 });
    expect(resolveRankAndAlpha(config, "model.layers.0.self_attn.v_proj")).toEqual({ rank: 8, alpha: 16 });
    expect(resolveRankAndAlpha({ ...config, rank_pattern: {} }, "model.layers.0.self_attn.q_proj")).toEqual({ rank: 8, alpha: 3 });
    expect(resolveRankAndAlpha({ ...config, rank_pattern: { "model.layers.0.self_attn.q_proj": 5 } }, "model.layers.0.self_attn.q_proj").rank).toBe(5);
    expect(resolveRankAndAlpha({ ...config, rank_pattern: { "layers.1.self_attn.q_proj": 5 } }, "model.layers.11.self_attn.q_proj").rank).toBe(8);
    expect(resolveRankAndAlpha({ ...config, rank_pattern: { "layers\\.\\d+\\.self_attn\\.q_proj": 5 } }, "model.layers.11.self_attn.q_proj").rank).toBe(5);
  });

  it("uses use_rslora for the scale", () => {
    const dir = handAdapter({ ...BASE_CONFIG, r: 4, lora_alpha: 8, use_rslora: true }, { [A]: [[4, 1], [1, 2, 3, 4]], [B]: [[1, 4], [1, 2, 3, 4]] });
    expect(readPeftAdapter(dir).modules.get("model.layers.0.self_attn.q_proj")!.scale).toBe(4);
  });

  it("accepts a regular expression or all-linear target_modules", () => {
    expect(readPeftAdapter(handAdapter({ ...BASE_CONFIG, target_modules: ".*\\.q_proj" }, GOOD)).modules.size).toBe(1);
    expect(readPeftAdapter(handAdapter({ ...BASE_CONFIG, target_modules: "all-linear" }, GOOD)).modules.size).toBe(1);
  });

  const bad: [string, () => string, string][] = [
    ["a missing config", () => {
      const dir = handAdapter(BASE_CONFIG, GOOD);
      fs.rmSync(path.join(dir, "adapter_config.json"));
      return dir;
    }, "adapter_config.json not found"],
    ["a pickle weights file", () => {
      const dir = handAdapter(BASE_CONFIG, GOOD);
      fs.rmSync(path.join(dir, "adapter_model.safetensors"));
      fs.writeFileSync(path.join(dir, "adapter_model.bin"), "");
      return dir;
    }, "safetensors.torch.save_file"],
    ["missing weights", () => {
      const dir = handAdapter(BASE_CONFIG, GOOD);
      fs.rmSync(path.join(dir, "adapter_model.safetensors"));
      return dir;
    }, "no weights"],
    ["invalid JSON", () => {
      const dir = handAdapter(BASE_CONFIG, GOOD);
      fs.writeFileSync(path.join(dir, "adapter_config.json"), "{");
      return dir;
    }, "not valid JSON"],
    ["another PEFT type", () => handAdapter({ ...BASE_CONFIG, peft_type: "IA3" }, GOOD), '"IA3"'],
    ["no peft_type", () => handAdapter({ r: 1, lora_alpha: 2 }, GOOD), "no peft_type"],
    ["a fractional r", () => handAdapter({ ...BASE_CONFIG, r: 1.5 }, GOOD), "r is 1.5"],
    ["a missing lora_alpha", () => handAdapter({ peft_type: "LORA", r: 1 }, GOOD), "lora_alpha"],
    ["a bad target_modules", () => handAdapter({ ...BASE_CONFIG, target_modules: 3 }, GOOD), "target_modules is 3"],
    ["a bad rank_pattern", () => handAdapter({ ...BASE_CONFIG, rank_pattern: { q: "4" } }, GOOD), "rank_pattern"],
    ["DoRA", () => handAdapter({ ...BASE_CONFIG, use_dora: true }, GOOD), "use_dora"],
    ["layer replication", () => handAdapter({ ...BASE_CONFIG, layer_replication: [[0, 1]] }, GOOD), "layer_replication"],
    ["layers_to_transform", () => handAdapter({ ...BASE_CONFIG, layers_to_transform: [0] }, GOOD), "layers_to_transform is [0], which restricts LoRA to some layers, but peftc does not apply layers_to_transform"],
    ["a single layers_to_transform", () => handAdapter({ ...BASE_CONFIG, layers_to_transform: 1 }, GOOD), "layers_to_transform is 1"],
    ["exclude_modules", () => handAdapter({ ...BASE_CONFIG, exclude_modules: ["v_proj"] }, GOOD), 'exclude_modules is ["v_proj"], which keeps modules out of target_modules'],
    ["modules_to_save", () => handAdapter({ ...BASE_CONFIG, modules_to_save: ["lm_head"] }, GOOD), 'modules_to_save is ["lm_head"], which replaces whole modules with trained copies'],
    ["trainable tokens", () => handAdapter({ ...BASE_CONFIG, trainable_token_indices: [5] }, GOOD), "trainable_token_indices is [5]"],
    ["target_parameters", () => handAdapter({ ...BASE_CONFIG, target_parameters: ["experts.gate_up_proj"] }, GOOD), "target_parameters is"],
    ["a module without lora_B", () => handAdapter(BASE_CONFIG, { [A]: GOOD[A] }), "no lora_B"],
    ["a module without lora_A", () => handAdapter(BASE_CONFIG, { [B]: GOOD[B] }), "no lora_A"],
    ["a rank that differs from r", () => handAdapter({ ...BASE_CONFIG, r: 2 }, GOOD), "gives it rank 2"],
    ["a rank that differs from rank_pattern", () => handAdapter({ ...BASE_CONFIG, rank_pattern: { q_proj: 3 } }, GOOD), "gives it rank 3"],
    ["A and B ranks that disagree", () => handAdapter(BASE_CONFIG, { [A]: GOOD[A], [B]: [[1, 3], [3, 4, 5]] }), "B must be [out, 1]"],
    ["a 1-D weight", () => handAdapter(BASE_CONFIG, { [A]: [[2], [1, 2]], [B]: GOOD[B] }), "2-D"],
    ["a module target_modules does not select", () => handAdapter({ ...BASE_CONFIG, target_modules: ["v_proj"] }, GOOD), "does not select it"],
    ["mixed adapter names", () => handAdapter(BASE_CONFIG, { [A.replace("lora_A.weight", "lora_A.default.weight")]: GOOD[A], [B.replace("lora_B.weight", "lora_B.other.weight")]: GOOD[B] }), "mixes adapter names"],
    ["duplicate keys for one matrix", () => handAdapter(BASE_CONFIG, { ...GOOD, [A.replace("base_model.model.", "")]: GOOD[A] }), "are both lora_A"],
    ["embedding LoRA", () => handAdapter(BASE_CONFIG, { ...GOOD, "base_model.model.model.embed_tokens.lora_embedding_A": [[1, 2], [1, 2]] }), "embedding"],
    ["no LoRA weights", () => handAdapter(BASE_CONFIG, { "base_model.model.score.weight": [[1], [1]] }), "contains no LoRA weights"],
  ];

  it.each(bad)("rejects %s", (_, make, problem) => {
    const dir = make();
    const error = errorOf(() => readPeftAdapter(dir));
    expect(error.code).toBe("E_ADAPTER");
    expect(error.message).toContain(problem);
    expect(error.message).toContain(dir);
  });

  it("reports a missing folder as not found", () => {
    expect(errorOf(() => readPeftAdapter(path.join(makeTempDir(), "none"))).code).toBe("E_FILE_NOT_FOUND");
  });
});

describeCorpus("aidreams260K reference adapter", () => {
  interface LoraGrad {
    config: { r: number; lora_alpha: number; target_modules: string[]; lora_dropout: number; bias: string };
    param_order: string[];
    shapes: Record<string, number[]>;
    values: Record<string, number[][]>;
  }
  const reference = (): LoraGrad => JSON.parse(fs.readFileSync(path.join(CORPUS_DIR, "aidreams260K/reference/lora_grad.json"), "utf8")) as LoraGrad;
  const MODULES = [0, 1, 2, 3].flatMap((layer) => ["q_proj", "v_proj"].map((name) => `model.layers.${layer}.self_attn.${name}`));
  const moduleOf = (key: string): string => key.replace(/^base_model\.model\./, "").replace(/\.lora_[AB]\.default\.weight$/, "");

  it("builds and reads an adapter from the reference values", () => {
    const data = reference();
    const records: LoraRecord[] = [];
    const tensors = new Map<string, Float32Array>();
    for (const torchName of [...new Set(data.param_order.map(moduleOf))]) {
      const aKey = `base_model.model.${torchName}.lora_A.default.weight`;
      const bKey = `base_model.model.${torchName}.lora_B.default.weight`;
      const [rank, inFeatures] = data.shapes?.[aKey] ?? [data.values[aKey].length, data.values[aKey][0].length];
      const outFeatures = data.values[bKey].length;
      records.push({ ...loraRecord(torchName, { rank, alpha: data.config.lora_alpha, inFeatures, outFeatures }), a: aKey, b: bKey });
      tensors.set(aKey, Float32Array.from(data.values[aKey].flat()));
      tensors.set(bKey, Float32Array.from(data.values[bKey].flat()));
    }
    const allModules = [0, 1, 2, 3].flatMap((layer) => ["q_proj", "k_proj", "v_proj", "o_proj"].map((name) => `model.layers.${layer}.self_attn.${name}`));
    const dir = makeTempDir();
    writePeftAdapter(dir, { lora: records, tensors, moduleNames: allModules, defaults: { dropout: data.config.lora_dropout } });

    const config = readConfig(dir);
    expect(config.target_modules).toEqual(data.config.target_modules);
    expect(config.r).toBe(data.config.r);
    expect(config.lora_alpha).toBe(data.config.lora_alpha);
    const keys = [...readSafetensors(path.join(dir, "adapter_model.safetensors")).tensors.keys()];
    expect(keys).toEqual(data.param_order.map((key) => key.replace(".default.", ".")).sort());

    const adapter = readPeftAdapter(dir);
    expect([...adapter.modules.keys()]).toEqual(MODULES);
    for (const [name, module] of adapter.modules) {
      expect([name, module.rank, module.alpha, module.scale]).toEqual([name, 4, 8, 2]);
      expect(module.a.numbers()).toEqual(data.values[`base_model.model.${name}.lora_A.default.weight`].flat().map(Math.fround));
      expect(module.b.numbers()).toEqual(data.values[`base_model.model.${name}.lora_B.default.weight`].flat().map(Math.fround));
    }
  });

  it("reads the reference key names with the adapter name", () => {
    const data = reference();
    const tensors: Record<string, [number[], number[]]> = {};
    for (const key of data.param_order) tensors[key] = [[data.values[key].length, data.values[key][0].length], data.values[key].flat()];
    const dir = handAdapter({ peft_type: "LORA", r: data.config.r, lora_alpha: data.config.lora_alpha, target_modules: data.config.target_modules, bias: data.config.bias }, tensors);
    const adapter = readPeftAdapter(dir);
    expect([...adapter.modules.keys()]).toEqual(MODULES);
    for (const module of adapter.modules.values()) expect([module.rank, module.alpha, module.scale]).toEqual([4, 8, 2]);
  });
});
