import * as path from "node:path";
import type { PromptInit } from "../dsl/prompt-tuning";
import { PeftcError } from "../errors";
import { loadModel } from "../ir/io";
import { discoverModules } from "../match/discover";
import { DataType, isFloatType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import type { Manifest } from "./manifest";
import { type PeftConfigJson, writeAdapterFolder } from "./adapter-folder";

/**
 * Hugging Face PEFT adapter folders for prompt tuning: adapter_config.json
 * (a PromptTuningConfig) and adapter_model.safetensors with the one key
 * `prompt_embeddings` [num_virtual_tokens, token_dim]. PEFT's
 * get_peft_model_state_dict saves the prompt encoder's embedding weight
 * under that key, and set_peft_model_state_dict loads it back into
 * `prompt_encoder.<adapter>.embedding.weight` (PEFT's
 * utils/save_and_load.py).
 */

/** Key of the virtual-token embeddings in a PEFT prompt-learning state dict. */
export const PEFT_PROMPT_KEY = "prompt_embeddings";

/** The fields of PEFT's PromptLearningConfig, which prompt tuning and prefix tuning share. */
export interface PromptLearningConfigJson extends PeftConfigJson {
  num_virtual_tokens: number;
  token_dim: number;
  /** 1 for a decoder-only or encoder-only model; PEFT uses 2 for encoder-decoder models. */
  num_transformer_submodules: number;
  num_attention_heads: number | null;
  num_layers: number;
  auto_mapping: null;
}

/**
 * adapter_config.json of a prompt-tuning adapter, with the fields of a
 * published PEFT prompt-tuning adapter of bigscience/bloomz-560m. Later
 * fields (tokenizer_kwargs, modules_to_save) default to null in PEFT and
 * are left out.
 */
export interface PromptTuningConfigJson extends PromptLearningConfigJson {
  peft_type: "PROMPT_TUNING";
  /** Null when discovery could not read the head count. */
  num_attention_heads: number | null;
  /** "TEXT" when the virtual tokens started from a text's embeddings and a tokenizer name is known, "RANDOM" otherwise. */
  prompt_tuning_init: "RANDOM" | "TEXT";
  prompt_tuning_init_text: string | null;
  tokenizer_name_or_path: string | null;
}

export interface PeftPromptInput {
  /** The trained virtual-token embeddings [tokens, hidden]. */
  embeddings: Tensor;
  /** The spec's init, for prompt_tuning_init. */
  init: PromptInit;
  numLayers: number;
  numAttentionHeads: number | null;
  /** PEFT task type. Default "CAUSAL_LM". */
  taskType?: string | null;
  baseModel?: string | null;
  /** Hugging Face tokenizer id or path, written as tokenizer_name_or_path for a text init (default: `baseModel`). */
  tokenizer?: string | null;
}

/**
 * Writes a PEFT prompt-tuning adapter folder. PEFT rejects a TEXT config
 * without tokenizer_name_or_path, so a text init is written as TEXT only
 * when a tokenizer (or base model) name is given, and as RANDOM without the
 * text otherwise, so the config does not contradict itself. PEFT loads the
 * embeddings from the file either way, and reads the init only to
 * initialise a new prompt.
 */
export function writePeftPromptAdapter(dir: string, input: PeftPromptInput): { config: PromptTuningConfigJson; files: string[] } {
  const embeddings = checkedEmbeddings(input.embeddings);
  const [tokens, hidden] = embeddings.dims;
  const text = typeof input.init === "object" && "text" in input.init ? input.init.text : null;
  const tokenizer = input.tokenizer ?? input.baseModel ?? null;
  const config: PromptTuningConfigJson = {
    auto_mapping: null,
    base_model_name_or_path: input.baseModel ?? null,
    inference_mode: true,
    num_attention_heads: input.numAttentionHeads,
    num_layers: input.numLayers,
    num_transformer_submodules: 1,
    num_virtual_tokens: tokens,
    peft_type: "PROMPT_TUNING",
    prompt_tuning_init: text !== null && tokenizer !== null ? "TEXT" : "RANDOM",
    prompt_tuning_init_text: tokenizer !== null ? text : null,
    revision: null,
    task_type: input.taskType === undefined ? "CAUSAL_LM" : input.taskType,
    token_dim: hidden,
    tokenizer_name_or_path: text !== null ? tokenizer : null,
  };
  const files = writeAdapterFolder(dir, { weights: new Map([[PEFT_PROMPT_KEY, embeddings]]), config });
  return { config, files };
}

/** Renames the tensor to PEFT's key, keeping its dtype, after checking it is a finite float matrix. */
function checkedEmbeddings(tensor: Tensor): Tensor {
  if (!isFloatType(tensor.dtype) || tensor.dims.length !== 2) {
    throw new PeftcError("E_ADAPTER", `${tensor.name} is a ${DataType[tensor.dtype]} tensor of shape [${tensor.dims.join(", ")}], but prompt embeddings are a float [tokens, hidden] matrix. The parameter file does not belong to this manifest.`, { tensor: tensor.name });
  }
  const values = tensor.data() as ArrayLike<number>;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new PeftcError("E_ADAPTER", `${tensor.name} contains ${values[i]} at index ${i}, so the adapter would break the model. Export a checkpoint from before training diverged.`, { tensor: tensor.name });
    }
  }
  return Tensor.fromArray(PEFT_PROMPT_KEY, tensor.dtype, [...tensor.dims], tensor.data());
}

/**
 * Collects what a prompt-tuning adapter needs from an artifact folder. The
 * embeddings come from `tensors` (params.safetensors or a checkpoint) and
 * the init from the spec in the manifest. The layer and head counts come
 * from the attention blocks of the folder's eval.onnx (or infer.onnx),
 * loaded without reading its weights.
 */
export function promptAdapterInput(artifactDir: string, manifest: Manifest, tensors: ReadonlyMap<string, Tensor>): Pick<PeftPromptInput, "embeddings" | "init" | "numLayers" | "numAttentionHeads"> {
  const rows = manifest.parameters.filter((parameter) => parameter.method === "prompt");
  if (rows.length !== 1) throw new PeftcError("E_ARTIFACT", `the manifest lists ${rows.length} prompt-tuning tensors, but a PEFT prompt-tuning adapter contains one. Compile a spec with one promptTuning().`, { file: artifactDir });
  const embeddings = tensors.get(rows[0].name);
  if (!embeddings) throw new PeftcError("E_ADAPTER", `the values of ${rows[0].name} are missing. Pass a parameter file that contains the prompt embeddings.`, { tensor: rows[0].name });
  if (embeddings.dims.join() !== rows[0].shape.join()) {
    throw new PeftcError("E_ADAPTER", `${rows[0].name} has shape [${embeddings.dims.join(", ")}], but the manifest lists [${rows[0].shape.join(", ")}]. The parameter file does not belong to this manifest.`, { tensor: rows[0].name });
  }
  const methods = (manifest.spec?.value as { methods?: { method?: string; init?: PromptInit }[] } | null)?.methods ?? [];
  const init = methods.find((method) => method?.method === "prompt")?.init ?? "random";
  const graph = manifest.graphs.eval?.file ?? manifest.graphs.infer?.file;
  if (!graph) throw new PeftcError("E_ARTIFACT", `${artifactDir} has neither eval.onnx nor infer.onnx, so the model's layer and head counts are unknown. Compile the artifacts again.`, { file: artifactDir });
  const attention = discoverModules(loadModel(path.join(artifactDir, graph))).attention;
  if (attention.length === 0) throw new PeftcError("E_ARTIFACT", `no attention blocks found in ${path.join(artifactDir, graph)}, so num_layers and num_attention_heads are unknown.`, { file: artifactDir });
  return { embeddings, init, numLayers: attention.length, numAttentionHeads: attention[0].heads };
}
