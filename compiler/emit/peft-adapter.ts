import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import type { QkvLayout, QkvPart } from "../match/fused-qkv";
import type { LoraRecord } from "../methods/parameters";
import { DataType, isFloatType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type PeftConfigJson, writeAdapterFolder } from "./adapter-folder";
import { readSafetensors } from "./safetensors";

/**
 * Hugging Face PEFT adapter folders for LoRA: adapter_config.json (a
 * LoraConfig) and adapter_model.safetensors with one
 * `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight`
 * [out, r] pair per adapted module. PEFT computes a module's output as
 * W·x + scale · B·(A·x), with scale = lora_alpha / r, or lora_alpha / sqrt(r)
 * with use_rslora.
 */

export { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE };
const PICKLE_WEIGHTS_FILE = "adapter_model.bin";
const KEY_PREFIX = "base_model.model.";

/**
 * adapter_config.json of a LoRA adapter. The writer emits the fields that
 * PEFT 0.10-era adapters carry (compared with published adapter_config.json
 * files). Later fields (lora_bias, exclude_modules, use_qalora,
 * target_parameters, trainable_token_indices and others) are left out:
 * their defaults mean what peftc exports, and older PEFT releases fail on
 * config keys they do not know.
 */
export interface LoraConfigJson extends PeftConfigJson {
  peft_type: "LORA";
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Module names: a list matched by PEFT against each name or its dot-separated suffix, or one regular expression matched against the whole name. */
  target_modules: string[] | string | null;
  bias: "none" | "all" | "lora_only";
  use_rslora: boolean;
  /** Ranks that differ from `r`, keyed by a regular expression that PEFT matches against the end of the module name. */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  /** True when base weights are stored [in, out], as GPT-2's Conv1D. */
  fan_in_fan_out: boolean;
  modules_to_save: string[] | null;
  init_lora_weights: boolean | string;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  [field: string]: unknown;
}

/** Options that are not properties of a LoRA branch: PEFT settings of the whole adapter. */
export interface PeftAdapterDefaults {
  /** Preferred global `r` when several ranks are equally common. */
  rank?: number;
  /** Preferred global `lora_alpha` when several alphas are equally common. */
  alpha?: number;
  /** `lora_dropout`. Default: the most common dropout of the branches. */
  dropout?: number;
  /** `use_rslora`. Default: the most common setting of the branches. */
  rsLora?: boolean;
  bias?: "none" | "all" | "lora_only";
  /** PyTorch names of modules that train in full, or null. */
  modulesToSave?: readonly string[] | null;
  /** peftc's init name ("kaiming" or "gaussian") or PEFT's `init_lora_weights` value. Default true (PEFT's Kaiming-uniform A). */
  init?: boolean | string;
}

export interface PeftAdapterInput {
  lora: readonly LoraRecord[];
  /** Values of each LoRA parameter by parameter name: A [rank, in] and B [out, rank]. */
  tensors: ReadonlyMap<string, Tensor | Float32Array>;
  /** PEFT task type. Default "CAUSAL_LM". */
  taskType?: string | null;
  baseModel?: string | null;
  defaults?: PeftAdapterDefaults;
  /**
   * PyTorch names of every module of the base model. With it,
   * target_modules lists module name suffixes such as "q_proj" whenever they
   * select exactly the adapted modules. Without it, target_modules lists full module
   * names, because a suffix could also select modules that have no LoRA weights.
   */
  moduleNames?: readonly string[];
  /** Other state-dict entries to save (trained biases, modules_to_save weights), by PyTorch parameter name. */
  extraTensors?: ReadonlyMap<string, Tensor>;
}

/** One adapted module as written: the fused-QKV parts it carries, or null for a whole module. */
export interface ExportedModule {
  torchName: string;
  rank: number;
  alpha: number;
  scale: number;
  parts: QkvPart[] | null;
}

export interface WrittenAdapter {
  config: LoraConfigJson;
  modules: ExportedModule[];
  files: string[];
}

/** One module's LoRA update in PEFT form, before it is written. */
interface ModuleUpdate {
  torchName: string;
  rank: number;
  scale: number;
  /** lora_alpha that gives `scale` under this update's own rsLora setting. */
  alpha: number;
  rsLora: boolean;
  inFeatures: number;
  outFeatures: number;
  a: Float32Array;
  b: Float32Array;
  parts: QkvPart[] | null;
}

function adapterError(message: string, details: Record<string, string | number | undefined> = {}): PeftcError {
  return new PeftcError("E_ADAPTER", message, details);
}

// ---------------------------------------------------------------------------
// Writing

/**
 * Writes a PEFT LoRA adapter folder: adapter_config.json and
 * adapter_model.safetensors. LoRA on parts of a fused QKV projection, which
 * PEFT cannot express, becomes an equivalent LoRA on the whole projection
 * (see `fuseParts`). Creates `dir`, and rejects a non-empty folder that
 * contains no adapter_config.json. Both files go to temporary names first and are
 * renamed only when both are complete.
 */
export function writePeftAdapter(dir: string, input: PeftAdapterInput): WrittenAdapter {
  const gated = input.lora.find((record) => record.gate !== null);
  if (gated) {
    throw adapterError(`${gated.path} has a learned LoRA gate (UniPELT), which a PEFT LoRA adapter cannot express. Use the artifact folder's params.safetensors with peftc instead.`, { module: gated.path });
  }
  const updates = buildUpdates(input);
  const config = buildConfig(updates, input);
  const weights = new Map<string, Tensor>();
  for (const update of updates) {
    const key = `${KEY_PREFIX}${update.torchName}`;
    weights.set(`${key}.lora_A.weight`, Tensor.fromArray(`${key}.lora_A.weight`, DataType.FLOAT, [update.rank, update.inFeatures], update.a));
    weights.set(`${key}.lora_B.weight`, Tensor.fromArray(`${key}.lora_B.weight`, DataType.FLOAT, [update.outFeatures, update.rank], update.b));
  }
  for (const [name, tensor] of input.extraTensors ?? []) {
    const key = `${KEY_PREFIX}${name}`;
    if (weights.has(key)) throw adapterError(`extra tensor "${name}" has the same key as a LoRA weight. Rename it.`, { tensor: name });
    weights.set(key, tensor);
  }

  const files = writeAdapterFolder(dir, { weights, config: sortKeys(config) });

  const modules = updates.map((update) => ({
    torchName: update.torchName,
    rank: update.rank,
    alpha: alphaFor(update, config.use_rslora),
    scale: update.scale,
    parts: update.parts,
  }));
  return { config, modules, files };
}

function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

function sortKeys(config: LoraConfigJson): Record<string, unknown> {
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(config).sort()) sorted[key] = config[key];
  return sorted;
}

/** Groups the branches by PyTorch module and turns each group into one PEFT update. */
function buildUpdates(input: PeftAdapterInput): ModuleUpdate[] {
  if (input.lora.length === 0) throw adapterError("there are no LoRA branches to export: the spec adapted no module with lora().");
  const groups = new Map<string, LoraRecord[]>();
  for (const record of input.lora) {
    const group = groups.get(record.torchName) ?? [];
    group.push(record);
    groups.set(record.torchName, group);
  }
  const updates: ModuleUpdate[] = [];
  for (const [torchName, records] of [...groups].sort(([a], [b]) => compareStrings(a, b))) {
    const whole = records.filter((record) => record.part === null);
    if (whole.length > 0 && records.length > 1) {
      throw adapterError(`module ${torchName} has ${records.length} LoRA branches (${records.map((record) => record.path).join(", ")}), but PEFT allows one per module. Adapt it once.`, { module: torchName });
    }
    updates.push(whole.length === 1 ? wholeUpdate(whole[0], input.tensors) : fuseParts(torchName, records, input.tensors));
  }
  return updates;
}

/** Returns the values of parameter `name` as float32, checking its shape and that every value is finite. */
function valuesOf(tensors: PeftAdapterInput["tensors"], name: string, shape: [number, number], record: LoraRecord): Float32Array {
  const values = rawValuesOf(tensors, name, shape, record);
  const bad = values.findIndex((entry) => !Number.isFinite(entry));
  if (bad >= 0) {
    throw adapterError(`${name} (LoRA of ${record.path}) contains ${values[bad]} at index ${bad}, so the adapter would break the model. Export a checkpoint from before training diverged.`, { tensor: name });
  }
  return values;
}

function rawValuesOf(tensors: PeftAdapterInput["tensors"], name: string, shape: [number, number], record: LoraRecord): Float32Array {
  const value = tensors.get(name);
  if (value === undefined) throw adapterError(`the values of ${name} (LoRA of ${record.path}) are missing. Pass a parameter file that contains every LoRA parameter.`, { tensor: name });
  const expected = shape[0] * shape[1];
  if (value instanceof Float32Array) {
    if (value.length !== expected) throw adapterError(`${name} has ${value.length} values, but LoRA of ${record.path} needs [${shape.join(", ")}] = ${expected}.`, { tensor: name });
    return value;
  }
  if (value.dims.length !== 2 || value.dims[0] !== shape[0] || value.dims[1] !== shape[1]) {
    throw adapterError(`${name} has shape [${value.dims.join(", ")}], but LoRA of ${record.path} needs [${shape.join(", ")}]. The parameter file does not belong to this manifest.`, { tensor: name });
  }
  if (!isFloatType(value.dtype)) throw adapterError(`${name} is not a floating-point tensor. The parameter file does not belong to this manifest.`, { tensor: name });
  const data = value.data();
  return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
}

function wholeUpdate(record: LoraRecord, tensors: PeftAdapterInput["tensors"]): ModuleUpdate {
  return {
    torchName: record.torchName,
    rank: record.rank,
    scale: record.scale,
    alpha: record.alpha,
    rsLora: record.rsLora,
    inFeatures: record.inFeatures,
    outFeatures: record.outFeatures,
    a: valuesOf(tensors, record.a, [record.rank, record.inFeatures], record),
    b: valuesOf(tensors, record.b, [record.outFeatures, record.rank], record),
    parts: null,
  };
}

/** Row placement of one part inside the fused output: how many rows the fused output and the part have, and where part row j lands. */
interface PartRows {
  fusedRows: number;
  partRows: number;
  rowOf: (row: number) => number;
}

function partRows(layout: QkvLayout, part: QkvPart, torchName: string): PartRows {
  const { order, widths } = layout;
  if ((layout.layout !== "contiguous" && layout.layout !== "interleaved") || !order || !widths) {
    const reason = layout.message ?? "its row layout is unknown";
    throw adapterError(`LoRA on part ${part} of ${torchName} cannot be exported: ${reason}. Adapt the whole projection instead.`, { module: torchName });
  }
  const index = order.indexOf(part);
  if (index < 0) throw adapterError(`part ${part} is not in the row order [${order.join(", ")}] of ${torchName}.`, { module: torchName });
  const offset = order.slice(0, index).reduce((sum, other) => sum + widths[other], 0);
  const groupWidth = order.reduce((sum, other) => sum + widths[other], 0);
  const width = widths[part];
  if (layout.layout === "contiguous") return { fusedRows: groupWidth, partRows: width, rowOf: (row) => offset + row };

  const groups = layout.groups;
  if (groups === null) throw adapterError(`LoRA on part ${part} of ${torchName} cannot be exported: the number of head groups of its interleaved layout is unknown. Adapt the whole projection instead.`, { module: torchName });
  // Part row j is row j % width of group floor(j / width), and each group contains its parts in `order`.
  return { fusedRows: groups * groupWidth, partRows: groups * width, rowOf: (row) => Math.floor(row / width) * groupWidth + offset + (row % width) };
}

/**
 * Turns LoRA branches on parts of one fused QKV projection into one LoRA
 * on the whole projection that gives the same output. A is the parts' A
 * matrices stacked along the rank ([sum r, in]). B is [fused out, sum r], zero
 * except that each part's B, multiplied by its scale over the exported scale,
 * sits on the part's rows and rank columns. The exported scale is the
 * first part's (in row order), so B is unchanged when all parts share one scale.
 */
function fuseParts(torchName: string, records: LoraRecord[], tensors: PeftAdapterInput["tensors"]): ModuleUpdate {
  const layout = records[0].qkv;
  if (!layout) throw adapterError(`LoRA branch ${records[0].path} is on part ${records[0].part} of ${torchName} but has no row layout.`, { module: torchName });
  for (const record of records) {
    if (JSON.stringify(record.qkv) !== JSON.stringify(layout)) {
      throw adapterError(`LoRA branches on ${torchName} disagree on its row layout (${records[0].path} and ${record.path}). This is a bug in peftc. Please report it.`, { module: torchName });
    }
    if (record.inFeatures !== records[0].inFeatures) {
      throw adapterError(`LoRA branches on ${torchName} disagree on its input width (${records[0].inFeatures} and ${record.inFeatures}).`, { module: torchName });
    }
  }
  const order = layout.order ?? [];
  const sorted = [...records].sort((x, y) => order.indexOf(x.part!) - order.indexOf(y.part!));
  sorted.forEach((record, i) => {
    if (i > 0 && record.part === sorted[i - 1].part) throw adapterError(`part ${record.part} of ${torchName} has two LoRA branches. Adapt it once.`, { module: torchName });
  });

  const inFeatures = sorted[0].inFeatures;
  const rank = sorted.reduce((sum, record) => sum + record.rank, 0);
  const exportedScale = sorted[0].scale;
  const placements = sorted.map((record) => ({ record, rows: partRows(layout, record.part!, torchName) }));
  const fusedRows = placements[0].rows.fusedRows;

  const a = new Float32Array(rank * inFeatures);
  const b = new Float32Array(fusedRows * rank);
  let column = 0;
  for (const { record, rows } of placements) {
    if (record.outFeatures !== rows.partRows) {
      throw adapterError(`LoRA branch ${record.path} has ${record.outFeatures} output rows, but the row layout of ${torchName} gives part ${record.part} ${rows.partRows}.`, { module: torchName });
    }
    a.set(valuesOf(tensors, record.a, [record.rank, inFeatures], record), column * inFeatures);
    const partB = valuesOf(tensors, record.b, [record.outFeatures, record.rank], record);
    const factor = record.scale / exportedScale;
    for (let row = 0; row < record.outFeatures; row++) {
      const target = rows.rowOf(row) * rank + column;
      for (let k = 0; k < record.rank; k++) b[target + k] = partB[row * record.rank + k] * factor;
    }
    column += record.rank;
  }

  // With one shared (alpha, rank, rsLora), alpha scales exactly: alpha_fused = alpha · f(R) / f(r).
  const first = sorted[0];
  const shared = sorted.every((record) => record.alpha === first.alpha && record.rank === first.rank && record.rsLora === first.rsLora);
  let alpha = exportedScale * (first.rsLora ? Math.sqrt(rank) : rank);
  if (shared && first.rsLora) alpha = first.alpha * Math.sqrt(rank / first.rank);
  if (shared && !first.rsLora) alpha = (first.alpha * rank) / first.rank;
  return { torchName, rank, scale: exportedScale, alpha, rsLora: first.rsLora, inFeatures, outFeatures: fusedRows, a, b, parts: sorted.map((record) => record.part!) };
}

/** Returns the lora_alpha that gives `update` its scale under the adapter's use_rslora setting. */
function alphaFor(update: ModuleUpdate, rsLora: boolean): number {
  if (update.rsLora === rsLora) return update.alpha;
  return update.scale * (rsLora ? Math.sqrt(update.rank) : update.rank);
}

/** Returns the most common value. A tie goes to `preferred` when it is among the tied values, else to the smallest. */
function mostCommon<T extends number | boolean>(values: readonly T[], preferred: T | undefined): T {
  const counts = new Map<T, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  const best = Math.max(...counts.values());
  const tied = [...counts].filter(([, count]) => count === best).map(([value]) => value);
  if (preferred !== undefined && tied.includes(preferred)) return preferred;
  return tied.sort((x, y) => Number(x) - Number(y))[0];
}

function initLoraWeights(init: boolean | string | undefined): boolean | string {
  if (init === undefined || init === "kaiming") return true;
  return init;
}

function buildConfig(updates: ModuleUpdate[], input: PeftAdapterInput): LoraConfigJson {
  const defaults = input.defaults ?? {};
  const layouts = new Set(input.lora.map((record) => record.layout));
  if (layouts.size > 1) {
    const example = (layout: string): string => input.lora.find((record) => record.layout === layout)!.torchName;
    throw adapterError(
      `the adapted modules mix weight layouts: ${example("in_out")} stores [in, out] (Conv1D) and ${example("out_in")} stores [out, in] (Linear). PEFT's fan_in_fan_out is one setting per adapter, so export them as two adapters.`,
    );
  }
  const rsLora = defaults.rsLora ?? mostCommon(updates.map((update) => update.rsLora), undefined);
  const alphas = updates.map((update) => alphaFor(update, rsLora));
  const r = mostCommon(updates.map((update) => update.rank), defaults.rank);
  const loraAlpha = mostCommon(alphas, defaults.alpha);

  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  const names = updates.map((update) => update.torchName);
  updates.forEach((update, i) => {
    if (update.rank === r && alphas[i] === loraAlpha) return;
    const key = patternKey(update.torchName, names);
    if (update.rank !== r) rankPattern[key] = update.rank;
    if (alphas[i] !== loraAlpha) alphaPattern[key] = alphas[i];
  });

  const config: LoraConfigJson = {
    alpha_pattern: alphaPattern,
    auto_mapping: null,
    base_model_name_or_path: input.baseModel ?? null,
    bias: defaults.bias ?? "none",
    fan_in_fan_out: layouts.has("in_out"),
    inference_mode: true,
    init_lora_weights: initLoraWeights(defaults.init),
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: loraAlpha,
    lora_dropout: defaults.dropout ?? mostCommon(input.lora.map((record) => record.dropout), undefined),
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: defaults.modulesToSave ? [...defaults.modulesToSave].sort() : null,
    peft_type: "LORA",
    r,
    rank_pattern: rankPattern,
    revision: null,
    target_modules: targetModules(names, input.moduleNames),
    task_type: input.taskType === undefined ? "CAUSAL_LM" : input.taskType,
    use_dora: false,
    use_rslora: rsLora,
  };
  checkResolution(config, updates, alphas);
  return config;
}

/**
 * Returns the rank_pattern / alpha_pattern key for a module: its name
 * without the first segment (`layers.0.self_attn.q_proj` for
 * `model.layers.0.self_attn.q_proj`), or the whole name when it has one
 * segment or the shorter key would also match another adapted module.
 * PEFT 0.10 (src/peft/tuners/lora/model.py) matches a key only after a dot,
 * `re.match(rf".*\.{key}$", name)`, and a later get_pattern_key also
 * accepts the whole name, `(.*\.)?({key})$`. The shortened key works with both.
 */
function patternKey(name: string, names: readonly string[]): string {
  const dot = name.indexOf(".");
  if (dot < 0) return name;
  const short = name.slice(dot + 1);
  const clash = names.some((other) => other !== name && patternMatches(short, other));
  return clash ? name : short;
}

/**
 * Tells whether PEFT's pattern key `key` selects module `name`, as Python's
 * `re.match(rf"(.*\.)?({key})$", name)` does. Keys are regular expressions,
 * and a key that is not a valid JavaScript regular expression matches only
 * the identical name.
 */
function patternMatches(key: string, name: string): boolean {
  try {
    return new RegExp(`^(?:.*\\.)?(?:${key})$`).test(name);
  } catch {
    return key === name;
  }
}

/** Returns the pattern key PEFT uses for `name`: the first key of rank_pattern, then of alpha_pattern, that matches. */
export function resolvePatternKey(config: Pick<LoraConfigJson, "rank_pattern" | "alpha_pattern">, name: string): string | undefined {
  return [...Object.keys(config.rank_pattern), ...Object.keys(config.alpha_pattern)].find((key) => patternMatches(key, name));
}

/** Returns a module's rank and alpha as PEFT resolves them: one key found by `resolvePatternKey` is looked up in both patterns. */
export function resolveRankAndAlpha(config: Pick<LoraConfigJson, "r" | "lora_alpha" | "rank_pattern" | "alpha_pattern">, name: string): { rank: number; alpha: number } {
  const key = resolvePatternKey(config, name);
  const rank = key !== undefined && Object.hasOwn(config.rank_pattern, key) ? config.rank_pattern[key] : config.r;
  const alpha = key !== undefined && Object.hasOwn(config.alpha_pattern, key) ? config.alpha_pattern[key] : config.lora_alpha;
  return { rank, alpha };
}

/** Checks that PEFT will give every written module the rank and alpha it was written with. */
function checkResolution(config: LoraConfigJson, updates: ModuleUpdate[], alphas: number[]): void {
  updates.forEach((update, i) => {
    const resolved = resolveRankAndAlpha(config, update.torchName);
    if (resolved.rank !== update.rank || resolved.alpha !== alphas[i]) {
      throw adapterError(
        `module ${update.torchName} would load with rank ${resolved.rank} and alpha ${resolved.alpha} instead of ${update.rank} and ${alphas[i]}, because a rank_pattern or alpha_pattern key written for another module also matches it. This is a bug in peftc. Please report it with the module names.`,
        { module: update.torchName },
      );
    }
  });
}

/** Tells whether a target_modules list entry selects `name`, as PEFT matches it: the whole name or a suffix after a dot. */
function targetMatches(target: string, name: string): boolean {
  return name === target || name.endsWith(`.${target}`);
}

/**
 * Returns target_modules: the sorted last segments of the adapted modules
 * when `moduleNames` shows that they select no other module, else the
 * sorted full names, which select exactly the adapted modules.
 */
function targetModules(adapted: readonly string[], moduleNames: readonly string[] | undefined): string[] {
  const full = [...new Set(adapted)].sort();
  if (!moduleNames) return full;
  const segments = [...new Set(adapted.map((name) => name.slice(name.lastIndexOf(".") + 1)))].sort();
  const adaptedSet = new Set(adapted);
  const extra = moduleNames.some((name) => !adaptedSet.has(name) && segments.some((segment) => targetMatches(segment, name)));
  return extra ? full : segments;
}

// ---------------------------------------------------------------------------
// Reading

/** One adapted module of an adapter folder. */
export interface PeftLoraModule {
  /** A [rank, in], as stored. */
  a: Tensor;
  /** B [out, rank], as stored. */
  b: Tensor;
  rank: number;
  alpha: number;
  /** alpha / rank, or alpha / sqrt(rank) with use_rslora. */
  scale: number;
  fanInFanOut: boolean;
}

export interface PeftAdapter {
  config: LoraConfigJson;
  /** LoRA modules by PyTorch module name, without the `base_model.model.` prefix. */
  modules: Map<string, PeftLoraModule>;
  /** modules_to_save of the config. */
  modulesToSave: string[] | null;
  /** Other tensors of the weights file (trained biases, modules_to_save copies) by key without the `base_model.model.` prefix. */
  otherTensors: Map<string, Tensor>;
}

/** Matches a LoRA weight key: optional prefix, module name, matrix, optional adapter name, `.weight`. */
const LORA_KEY = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.([^.]+))?\.weight$/;

/** Keys of LoRA variants this reader cannot turn into A and B, with what they mean. */
const UNSUPPORTED_KEYS: [RegExp, string][] = [
  [/\.lora_embedding_[AB](\.|$)/, "LoRA on an embedding layer"],
  [/\.lora_magnitude_vector(\.|$)/, "DoRA (use_dora)"],
  [/\.lora_[AB](\.[^.]+)?\.bias$/, "LoRA bias (lora_bias)"],
];

/**
 * Reads a PEFT LoRA adapter folder and validates it: the config is LoRA with
 * the fields PEFT needs, every module has A [r, in] and B [out, r], r matches
 * the config's r or rank_pattern, and target_modules selects the module.
 * Keys may carry the `base_model.model.` prefix and an adapter name segment
 * (`lora_A.default.weight`). Raises E_ADAPTER naming the file, key and fix.
 */
export function readPeftAdapter(dir: string): PeftAdapter {
  if (!fs.existsSync(dir)) throw new PeftcError("E_FILE_NOT_FOUND", `adapter folder ${dir} not found. Check the path.`, { file: dir });
  if (!fs.statSync(dir).isDirectory()) throw adapterError(`${dir} is a file. Pass the adapter folder that contains ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE}.`, { file: dir });
  const configFile = path.join(dir, ADAPTER_CONFIG_FILE);
  const weightsFile = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(configFile)) throw adapterError(`${configFile} not found: ${dir} is not a PEFT adapter folder.`, { file: configFile });
  const config = parseConfig(configFile);
  if (!fs.existsSync(weightsFile)) {
    if (fs.existsSync(path.join(dir, PICKLE_WEIGHTS_FILE))) {
      throw adapterError(
        `${dir} contains ${PICKLE_WEIGHTS_FILE}, a pickle file, which peftc does not read because unpickling can run code. Convert it in Python: safetensors.torch.save_file(torch.load("${PICKLE_WEIGHTS_FILE}"), "${ADAPTER_WEIGHTS_FILE}", metadata={"format": "pt"}).`,
        { file: path.join(dir, PICKLE_WEIGHTS_FILE) },
      );
    }
    throw adapterError(`${weightsFile} not found: the adapter folder has a config but no weights.`, { file: weightsFile });
  }
  const { tensors } = readSafetensors(weightsFile);
  const { pairs, otherTensors } = splitKeys(tensors, weightsFile);

  const modules = new Map<string, PeftLoraModule>();
  for (const [name, pair] of [...pairs].sort(([a], [b]) => compareStrings(a, b))) {
    modules.set(name, checkModule(name, pair, config, weightsFile, configFile));
  }
  if (modules.size === 0) throw adapterError(`${weightsFile} contains no LoRA weights (keys ending in .lora_A.weight and .lora_B.weight).`, { file: weightsFile });
  return { config, modules, modulesToSave: config.modules_to_save, otherTensors };
}

/** Sorts the weight keys into A/B pairs by module and other tensors, rejecting LoRA variants and mixed adapter names. */
function splitKeys(tensors: Map<string, Tensor>, file: string): { pairs: Map<string, { a?: [string, Tensor]; b?: [string, Tensor] }>; otherTensors: Map<string, Tensor> } {
  const pairs = new Map<string, { a?: [string, Tensor]; b?: [string, Tensor] }>();
  const otherTensors = new Map<string, Tensor>();
  let adapterName: string | undefined;
  for (const [key, tensor] of tensors) {
    for (const [pattern, what] of UNSUPPORTED_KEYS) {
      if (pattern.test(key)) throw adapterError(`${file}: key "${key}" belongs to ${what}, which peftc cannot import. Export a plain LoRA adapter.`, { file, key });
    }
    const match = LORA_KEY.exec(key);
    if (!match) {
      otherTensors.set(key.startsWith(KEY_PREFIX) ? key.slice(KEY_PREFIX.length) : key, tensor);
      continue;
    }
    const [, name, matrix, adapter] = match;
    const thisAdapter = adapter ?? "";
    if (adapterName !== undefined && adapterName !== thisAdapter) {
      throw adapterError(`${file} mixes adapter names ("${adapterName || "none"}" and "${thisAdapter || "none"}", key "${key}"). Save one adapter per folder.`, { file, key });
    }
    adapterName = thisAdapter;
    const pair = pairs.get(name) ?? {};
    const slot = matrix === "A" ? "a" : "b";
    if (pair[slot]) throw adapterError(`${file}: keys "${pair[slot]![0]}" and "${key}" are both lora_${matrix} of module ${name}. Remove one.`, { file, key });
    pair[slot] = [key, tensor];
    pairs.set(name, pair);
  }
  return { pairs, otherTensors };
}

function checkModule(name: string, pair: { a?: [string, Tensor]; b?: [string, Tensor] }, config: LoraConfigJson, file: string, configFile: string): PeftLoraModule {
  if (!pair.a || !pair.b) {
    const [present, missing] = pair.a ? [pair.a[0], "lora_B"] : [pair.b![0], "lora_A"];
    throw adapterError(`${file}: module ${name} has "${present}" but no ${missing} weight. The file is incomplete, so save the adapter again.`, { file, key: present });
  }
  const [aKey, a] = pair.a;
  const [bKey, b] = pair.b;
  for (const [key, tensor] of [pair.a, pair.b]) {
    if (tensor.dims.length !== 2) throw adapterError(`${file}: "${key}" has shape [${tensor.dims.join(", ")}], but LoRA weights are 2-D.`, { file, key });
    if (!isFloatType(tensor.dtype)) throw adapterError(`${file}: "${key}" is not a floating-point tensor.`, { file, key });
  }
  const rank = a.dims[0];
  if (b.dims[1] !== rank) {
    throw adapterError(`${file}: "${aKey}" is [${a.dims.join(", ")}] (rank ${rank}) but "${bKey}" is [${b.dims.join(", ")}], but B must be [out, ${rank}].`, { file, key: bKey });
  }
  const resolved = resolveRankAndAlpha(config, name);
  if (resolved.rank !== rank) {
    throw adapterError(`${file}: module ${name} has rank ${rank}, but ${configFile} gives it rank ${resolved.rank} (r or rank_pattern). The config does not belong to these weights.`, { file, key: aKey });
  }
  if (!selectsModule(config.target_modules, name)) {
    throw adapterError(`${file}: module ${name} has LoRA weights, but target_modules in ${configFile} does not select it, so PEFT would ignore them. Add the module to target_modules.`, { file, key: aKey });
  }
  const scale = config.use_rslora ? resolved.alpha / Math.sqrt(rank) : resolved.alpha / rank;
  return { a, b, rank, alpha: resolved.alpha, scale, fanInFanOut: config.fan_in_fan_out };
}

/** Tells whether target_modules selects `name` as PEFT does. Null and "all-linear" count as selecting every module that has weights. */
function selectsModule(targets: LoraConfigJson["target_modules"], name: string): boolean {
  if (targets === null) return true;
  if (Array.isArray(targets)) return targets.some((target) => targetMatches(target, name));
  if (targets === "all-linear") return true;
  try {
    return new RegExp(`^(?:${targets})$`).test(name);
  } catch {
    // A Python regular expression that JavaScript cannot compile is trusted, as PEFT will apply it.
    return true;
  }
}

/**
 * Config fields that change which modules PEFT adapts or what else it
 * loads, which peftc does not apply, with the fix for each. A field set to
 * its default (null, or an empty list) is accepted. layers_pattern is not
 * here because PEFT reads it only together with layers_to_transform.
 */
const UNAPPLIED_FIELDS: [field: string, effect: string, fix: string][] = [
  ["layers_to_transform", "restricts LoRA to some layers", "PEFT saves LoRA weights only for the layers it adapts, so if the weights file contains no others, set layers_to_transform to null."],
  ["exclude_modules", "keeps modules out of target_modules", "If the weights file contains no LoRA weights for the excluded modules, set exclude_modules to null."],
  ["modules_to_save", "replaces whole modules with trained copies", "peftc imports LoRA weights only, so export the adapter without modules_to_save, or train those modules with the spec's train option."],
  ["trainable_token_indices", "trains rows of the embedding", "Export the adapter without trainable tokens."],
  ["target_parameters", "puts LoRA on parameters instead of modules", "Export a LoRA adapter on modules (target_modules)."],
  ["alora_invocation_tokens", "makes an activated LoRA that starts at given tokens", "Export a plain LoRA adapter."],
];

function rejectUnappliedFields(raw: Record<string, unknown>, file: string): void {
  for (const [field, effect, fix] of UNAPPLIED_FIELDS) {
    const value = raw[field];
    const isDefault = value === undefined || value === null || (Array.isArray(value) && value.length === 0);
    if (isDefault) continue;
    throw adapterError(`${file}: ${field} is ${JSON.stringify(value)}, which ${effect}, but peftc does not apply ${field}, so the compiled model would differ from PEFT's. ${fix}`, { file, key: field });
  }
}

function parseConfig(file: string): LoraConfigJson {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw adapterError(`${file} is not valid JSON (${(error as Error).message}). Save the adapter again with PEFT's save_pretrained.`, { file });
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw adapterError(`${file} is not a JSON object.`, { file });
  const raw = json as Record<string, unknown>;
  const invalid = (field: string, expected: string): never => {
    throw adapterError(`${file}: ${field} is ${JSON.stringify(raw[field])}, but it must be ${expected}.`, { file, key: field });
  };
  const optional = <T>(field: string, check: (value: unknown) => boolean, expected: string, fallback: T): T => {
    const value = raw[field];
    if (value === undefined || value === null) return fallback;
    return check(value) ? (value as T) : invalid(field, expected);
  };
  const isString = (value: unknown): boolean => typeof value === "string";
  const isStringList = (value: unknown): boolean => Array.isArray(value) && value.every(isString);
  const isNumberMap = (value: unknown): boolean =>
    typeof value === "object" && value !== null && !Array.isArray(value) && Object.values(value).every((entry) => typeof entry === "number" && Number.isFinite(entry));

  if (raw.peft_type !== "LORA") {
    if (raw.peft_type === undefined) throw adapterError(`${file} has no peft_type, but a LoRA adapter config needs "peft_type": "LORA".`, { file, key: "peft_type" });
    throw adapterError(`${file}: peft_type is ${JSON.stringify(raw.peft_type)}, but peftc imports LoRA adapters only ("peft_type": "LORA").`, { file, key: "peft_type" });
  }
  const r = raw.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1) invalid("r", "a positive integer");
  const alpha = raw.lora_alpha;
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) invalid("lora_alpha", "a number");
  for (const [field, what] of [["use_dora", "DoRA"], ["lora_bias", "LoRA bias"], ["use_qalora", "QA-LoRA"]] as const) {
    if (raw[field] === true) throw adapterError(`${file}: ${field} is true, but peftc cannot import ${what} adapters. Export a plain LoRA adapter.`, { file, key: field });
  }
  if (raw.layer_replication !== undefined && raw.layer_replication !== null) {
    throw adapterError(`${file}: layer_replication is set, which changes the base model's layers, so peftc cannot import it.`, { file, key: "layer_replication" });
  }
  rejectUnappliedFields(raw, file);
  const bias = optional("bias", (value) => value === "none" || value === "all" || value === "lora_only", `"none", "all" or "lora_only"`, "none" as const);
  const targetModules = optional<string[] | string | null>("target_modules", (value) => isString(value) || isStringList(value), "a module name list or a regular expression", null);

  return {
    ...raw,
    peft_type: "LORA",
    task_type: optional("task_type", isString, "a string", null),
    base_model_name_or_path: optional("base_model_name_or_path", isString, "a string", null),
    revision: optional("revision", isString, "a string", null),
    r: r as number,
    lora_alpha: alpha as number,
    lora_dropout: optional("lora_dropout", (value) => typeof value === "number", "a number", 0),
    target_modules: targetModules,
    bias,
    use_rslora: optional("use_rslora", (value) => typeof value === "boolean", "true or false", false),
    rank_pattern: optional("rank_pattern", isNumberMap, "an object of module patterns to ranks", {}),
    alpha_pattern: optional("alpha_pattern", isNumberMap, "an object of module patterns to alphas", {}),
    fan_in_fan_out: optional("fan_in_fan_out", (value) => typeof value === "boolean", "true or false", false),
    modules_to_save: optional("modules_to_save", isStringList, "a list of module names", null),
    init_lora_weights: optional("init_lora_weights", (value) => typeof value === "boolean" || isString(value), "true, false or an init name", true),
    inference_mode: optional("inference_mode", (value) => typeof value === "boolean", "true or false", true),
    layers_to_transform: optional("layers_to_transform", (value) => typeof value === "number" || (Array.isArray(value) && value.every((entry) => typeof entry === "number")), "a layer index or a list of them", null),
    layers_pattern: optional("layers_pattern", (value) => isString(value) || isStringList(value), "a string or a list of strings", null),
  };
}
