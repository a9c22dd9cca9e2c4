import { PeftcError } from "../errors";
import { fusedRow } from "../methods/lora-merge";
import type { Ia3Record } from "../methods/ia3-record";
import { DataType, isFloatType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import { type PeftConfigJson, writeAdapterFolder } from "./adapter-folder";

/**
 * Hugging Face PEFT adapter folders for (IA)3: adapter_config.json (an
 * IA3Config) and adapter_model.safetensors with one
 * `base_model.model.<module>.ia3_l` per scaled module. PEFT's IA3Layer keeps
 * the vector in a ParameterDict entry `ia3_l.<adapter name>` of shape
 * [out, 1] for an output scaling and [1, in] for a feedforward (input)
 * scaling (peft/tuners/ia3/layer.py). get_peft_model_state_dict drops the
 * adapter name when saving (peft/utils/save_and_load.py), so the key has no
 * `.weight`.
 */

/** adapter_config.json of an (IA)3 adapter, with the fields PEFT 0.10-era IA3Config writes. */
export interface Ia3ConfigJson extends PeftConfigJson {
  peft_type: "IA3";
  /** Full PyTorch module names; PEFT matches each name or a dot-separated suffix of it. */
  target_modules: string[];
  /** The subset of target_modules whose input is scaled. */
  feedforward_modules: string[];
  /** True when the scaled weights are stored [in, out] (GPT-2's Conv1D). PEFT resets it per layer type when it loads. */
  fan_in_fan_out: boolean;
  modules_to_save: string[] | null;
  init_ia3_weights: boolean;
  auto_mapping: null;
}

export interface PeftIa3Input {
  records: readonly Ia3Record[];
  /** Values of each vector by parameter name. */
  tensors: ReadonlyMap<string, Tensor>;
  taskType?: string | null;
  baseModel?: string | null;
}

/** One module's vector as PEFT stores it. */
export interface ExportedIa3Module {
  torchName: string;
  feedforward: boolean;
  /** [out, 1] or [1, in]. */
  shape: [number, number];
  values: Float32Array;
}

/**
 * Writes a PEFT (IA)3 adapter folder. Vectors on parts of a fused QKV
 * projection, which PEFT cannot express, become one vector over the whole
 * projection's output with ones on the rows of parts that had none, which
 * scales the same rows by the same values.
 */
export function writePeftIa3Adapter(dir: string, input: PeftIa3Input): { config: Ia3ConfigJson; modules: ExportedIa3Module[]; files: string[] } {
  const modules = exportedModules(input);
  const config: Ia3ConfigJson = {
    auto_mapping: null,
    base_model_name_or_path: input.baseModel ?? null,
    fan_in_fan_out: input.records.some((record) => record.layout === "in_out"),
    feedforward_modules: modules.filter((module) => module.feedforward).map((module) => module.torchName),
    inference_mode: true,
    init_ia3_weights: true,
    modules_to_save: null,
    peft_type: "IA3",
    revision: null,
    target_modules: modules.map((module) => module.torchName),
    task_type: input.taskType === undefined ? "CAUSAL_LM" : input.taskType,
  };
  const weights = new Map<string, Tensor>();
  for (const module of modules) {
    const key = `base_model.model.${module.torchName}.ia3_l`;
    weights.set(key, Tensor.fromArray(key, DataType.FLOAT, module.shape, module.values));
  }
  const files = writeAdapterFolder(dir, { weights, config });
  return { config, modules, files };
}

/** Groups the records by PyTorch module, sorted by name, and builds each module's saved vector. */
function exportedModules(input: PeftIa3Input): ExportedIa3Module[] {
  if (input.records.length === 0) throw new PeftcError("E_ADAPTER", "there are no (IA)3 vectors to export: the spec scaled no module with ia3().");
  const groups = new Map<string, Ia3Record[]>();
  for (const record of input.records) groups.set(record.torchName, [...(groups.get(record.torchName) ?? []), record]);
  // Code-unit order, as Python's sorted() orders the names, independent of the locale.
  const names = [...groups.keys()].sort(compareStrings);
  return names.map((torchName) => {
    const records = groups.get(torchName)!;
    const first = records[0];
    if (first.feedforward) {
      if (records.length > 1) throw new PeftcError("E_ADAPTER", `module ${torchName} has ${records.length} input scalings (${records.map((record) => record.path).join(", ")}), but PEFT allows one per module.`, { module: torchName });
      return { torchName, feedforward: true, shape: [1, first.inFeatures], values: vectorOf(input.tensors, first) };
    }
    const values = new Float32Array(first.moduleOutFeatures).fill(1);
    for (const record of records) {
      if (record.feedforward) throw new PeftcError("E_ADAPTER", `module ${torchName} has both an input and an output scaling, but PEFT allows one (IA)3 vector per module.`, { module: torchName });
      const vector = vectorOf(input.tensors, record);
      const toFused = fusedRow(record);
      for (let row = 0; row < record.outFeatures; row++) values[toFused(row)] = vector[row];
    }
    return { torchName, feedforward: false, shape: [first.moduleOutFeatures, 1], values };
  });
}

function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

function vectorOf(tensors: ReadonlyMap<string, Tensor>, record: Ia3Record): Float32Array {
  const tensor = tensors.get(record.vector);
  if (!tensor) throw new PeftcError("E_ADAPTER", `the values of ${record.vector} ((IA)3 of ${record.path}) are missing. Pass a parameter file that contains every (IA)3 vector.`, { tensor: record.vector });
  const width = record.feedforward ? record.inFeatures : record.outFeatures;
  if (!isFloatType(tensor.dtype) || tensor.size !== width) {
    throw new PeftcError("E_ADAPTER", `${record.vector} is a ${DataType[tensor.dtype]} tensor of shape [${tensor.dims.join(", ")}], but (IA)3 of ${record.path} needs ${width} float values. The parameter file does not belong to this manifest.`, { tensor: record.vector });
  }
  const values = Float32Array.from(tensor.data() as ArrayLike<number>);
  const bad = values.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0) throw new PeftcError("E_ADAPTER", `${record.vector} contains ${values[bad]} at index ${bad}, so the adapter would break the model. Export a checkpoint from before training diverged.`, { tensor: record.vector });
  return values;
}
