import { PeftcError } from "../errors";
import { flatPrefixLayout, prefixIntoFlat } from "../methods/prefix-layout";
import { PROJECTION_NAMES, prefixNames, projectFlat } from "../methods/prefix-projection";
import type { PrefixTuningRecord } from "../methods/prefix-record";
import { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import { writeAdapterFolder } from "./adapter-folder";
import type { PromptLearningConfigJson } from "./peft-prompt";

/**
 * Hugging Face PEFT adapter folders for prefix tuning: adapter_config.json
 * (a PrefixTuningConfig) and adapter_model.safetensors with the one key
 * `prompt_embeddings` [num_virtual_tokens, num_layers·2·token_dim]. PEFT
 * (utils/save_and_load.py, get_peft_model_state_dict) saves the prefix
 * encoder's output there: the embedding itself without a projection, and
 * with one the MLP's output, which a PrefixEncoder built in inference mode
 * loads as its embedding. PEFT views each row as [num_layers·2,
 * num_attention_heads, head_dim] and reads layer l's key at 2l and its
 * value at 2l + 1; for grouped-query attention token_dim and
 * num_attention_heads are those of the key/value heads (PEFT's
 * _prepare_prompt_learning_config).
 */

/** Key of the prefix rows in a PEFT prompt-learning state dict. */
export const PEFT_PREFIX_KEY = "prompt_embeddings";

/** adapter_config.json of a prefix-tuning adapter, with the fields PEFT's PrefixTuningConfig writes. */
export interface PrefixTuningConfigJson extends PromptLearningConfigJson {
  peft_type: "PREFIX_TUNING";
  /**
   * True: PEFT then builds the encoder as a plain embedding of the saved
   * rows, with or without prefix_projection. NOTE: with prefix_projection,
   * loading with is_trainable=True builds the MLP, which cannot take the
   * rows, the same as for adapters PEFT saves itself.
   */
  inference_mode: boolean;
  /** kv_heads · head_dim per layer. */
  token_dim: number;
  /** The key/value heads, which PEFT splits token_dim into. */
  num_attention_heads: number;
  /** The projection's hidden width; token_dim without a projection, as PEFT defaults it. */
  encoder_hidden_size: number;
  prefix_projection: boolean;
}

export interface PeftPrefixInput {
  record: PrefixTuningRecord;
  /** Trained tensors by parameter name (params.safetensors or a checkpoint). */
  tensors: ReadonlyMap<string, Tensor>;
  /** PEFT task type. Default "CAUSAL_LM". */
  taskType?: string | null;
  baseModel?: string | null;
}

/** Computes PEFT's prompt_embeddings rows [tokens, num_layers·2·token_dim] from the trained tensors. */
export function peftPrefixRows(record: PrefixTuningRecord, tensors: ReadonlyMap<string, Tensor>): Float32Array {
  checkExportable(record);
  const layout = flatPrefixLayout(record.virtualTokens, record.layers);
  if (record.projectionHidden !== null) {
    const read = (name: string): Float32Array => valuesOf(tensors, name);
    const arrays = { embedding: read(PROJECTION_NAMES.embedding), firstWeight: read(PROJECTION_NAMES.firstWeight), firstBias: read(PROJECTION_NAMES.firstBias), secondWeight: read(PROJECTION_NAMES.secondWeight), secondBias: read(PROJECTION_NAMES.secondBias) };
    return projectFlat(arrays, layout, record.tokenDim, record.projectionHidden);
  }
  const flat = new Float32Array(record.virtualTokens * layout.width);
  for (const { layer, keyOffset, valueOffset } of layout.layers) {
    const names = prefixNames(layer.layer);
    prefixIntoFlat(flat, layout, layer, keyOffset, valueOf(tensors, names.key, layer.kvHeads * record.virtualTokens * layer.headDim));
    prefixIntoFlat(flat, layout, layer, valueOffset, valueOf(tensors, names.value, layer.kvHeads * record.virtualTokens * layer.headDim));
  }
  return flat;
}

/** Writes a PEFT prefix-tuning adapter folder. */
export function writePeftPrefixAdapter(dir: string, input: PeftPrefixInput): { config: PrefixTuningConfigJson; files: string[] } {
  const { record } = input;
  const rows = peftPrefixRows(record, input.tensors);
  for (let i = 0; i < rows.length; i++) {
    if (!Number.isFinite(rows[i])) throw new PeftcError("E_ADAPTER", `the prefix rows contain ${rows[i]} at index ${i}, so the adapter would break the model. Export a checkpoint from before training diverged.`);
  }
  const config: PrefixTuningConfigJson = {
    auto_mapping: null,
    base_model_name_or_path: input.baseModel ?? null,
    encoder_hidden_size: record.projectionHidden ?? record.tokenDim,
    inference_mode: true,
    num_attention_heads: record.layers[0].kvHeads,
    num_layers: record.numLayers,
    num_transformer_submodules: 1,
    num_virtual_tokens: record.virtualTokens,
    peft_type: "PREFIX_TUNING",
    prefix_projection: record.projectionHidden !== null,
    revision: null,
    task_type: input.taskType === undefined ? "CAUSAL_LM" : input.taskType,
    token_dim: record.tokenDim,
  };
  const embeddings = Tensor.fromArray(PEFT_PREFIX_KEY, DataType.FLOAT, [record.virtualTokens, rows.length / record.virtualTokens], rows);
  const files = writeAdapterFolder(dir, { weights: new Map([[PEFT_PREFIX_KEY, embeddings]]), config });
  return { config, files };
}

/** Rejects a prefix tuning that PEFT's PrefixEncoder cannot express. */
function checkExportable(record: PrefixTuningRecord): void {
  if (record.gate) {
    throw new PeftcError("E_ARTIFACT", "the prefix tuning has UniPELT gates (gate: true), which Hugging Face PEFT's prefix tuning does not have, so PEFT would ignore them and change the outputs. Compile with gate: false to export a PEFT adapter.");
  }
  if (record.layers.length !== record.numLayers) {
    throw new PeftcError("E_ARTIFACT", `the prefix tuning covers ${record.layers.length} of the model's ${record.numLayers} attention layers, but PEFT puts a prefix in every layer. Compile without the layers option to export a PEFT adapter.`);
  }
  const first = record.layers[0];
  const other = record.layers.find((layer) => layer.kvHeads !== first.kvHeads || layer.headDim !== first.headDim);
  if (other) {
    throw new PeftcError("E_ARTIFACT", `layer ${other.layer} has ${other.kvHeads} key/value heads of ${other.headDim}, but layer ${first.layer} has ${first.kvHeads} of ${first.headDim}; PEFT's prefix rows need equal layers.`);
  }
}

function valuesOf(tensors: ReadonlyMap<string, Tensor>, name: string): Float32Array {
  const tensor = tensors.get(name);
  if (!tensor) throw new PeftcError("E_ADAPTER", `the values of ${name} are missing. Pass a parameter file that contains the prefix tuning's tensors.`, { tensor: name });
  return Float32Array.from(tensor.data() as ArrayLike<number>);
}

function valueOf(tensors: ReadonlyMap<string, Tensor>, name: string, size: number): Float32Array {
  const values = valuesOf(tensors, name);
  if (values.length !== size) throw new PeftcError("E_ADAPTER", `${name} has ${values.length} values, but the manifest's prefix shape has ${size}. The parameter file does not belong to this manifest.`, { tensor: name });
  return values;
}
