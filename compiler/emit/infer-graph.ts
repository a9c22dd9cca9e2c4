import { PeftcError } from "../errors";
import { SpecError, isSpecError } from "../dsl/spec-error";
import { loadModel } from "../ir/io";
import { inferShapes } from "../ir/infer";
import type { Model } from "../ir/model";
import { validateModel } from "../ir/validate";
import { addKvCache, fuseAttentionCores, hasKvCache } from "../kvcache/rewrite";
import type { Method } from "../dsl/spec";
import { mergeIntoWeights } from "../kvcache/merge";
import { type Discovery, discoverModules } from "../match/discover";
import { hasCausalAttention } from "../kvcache/causal";
import { applySpec, type PeftGraph } from "../methods/apply";
import { buildPrefixFolding } from "../methods/prefix-folding";
import { type AdapterPlans, adapterPlans } from "./adapter-import";
import type { CompileOptions } from "./compile";
import { logitsOutput } from "../train/training-graphs";

/** The inference graph and what was folded into its weights. */
export interface InferGraph {
  model: Model;
  /** LoRA and (IA)3 target paths merged into base weights; empty when adapters stay graph inputs. */
  merged: string[];
  /** prefix.onnx, which computes the prefixes infer.onnx reads from a prefix tuning's projection; null when infer.onnx needs none. */
  prefix: Model | null;
}

/**
 * True for a decoder that generation can use: an output named `logits` of
 * [batch, sequence, vocab], and causal attention (or a cache of its own).
 * An encoder's hidden states or masked-LM logits do not qualify.
 */
export function isDecoder(model: Model, discovery: Pick<Discovery, "attention">): boolean {
  inferShapes(model);
  const logits = logitsOutput(model);
  if (logits.name !== "logits" || logits.type?.kind !== "tensor" || logits.type.shape?.length !== 3) return false;
  return hasKvCache(model) || hasCausalAttention(model, discovery);
}

/** Method kinds whose trained values `mergeIntoWeights` folds into the base weights. */
const MERGED_METHODS: ReadonlySet<Method["method"]> = new Set(["lora", "ia3", "bitfit", "layernorm", "unfreeze"]);

/**
 * Builds infer.onnx: the model with a KV cache (kept when the export has
 * one, added otherwise) and the spec's methods in evaluation mode. Methods
 * that change modules go in before the cache rewrite; prompt and prefix
 * tuning, which change what the cache holds, after it. With
 * `mergeAdapters`, LoRA, (IA)3 and the trained existing tensors are folded
 * into the base weights from the values in `trained` (the initial ones, an
 * adapter's or a params file's), and the other methods stay as they are.
 * Otherwise the trainable tensors are graph inputs, as in eval.onnx, so a
 * caller can switch adapters per run.
 */
export function buildInferGraph(options: CompileOptions, trained: PeftGraph): InferGraph {
  const model = loadModel(options.modelFile);
  const discovery = discoverModules(model);
  const merge = options.spec?.inference.mergeAdapters ?? false;
  const fused = options.spec?.inference.fusedAttention ?? false;
  const gatedPrefix = options.spec?.methods.find((method) => method.method === "prefix" && method.gate);
  if (fused && gatedPrefix) {
    // MultiHeadAttention takes the whole softmax inside the kernel, so the gate that scales the prefix columns of the probabilities has no place there.
    throw new SpecError("E_SPEC_MODEL", "prefixTuning's gate scales the attention probabilities, which the fused attention kernel of inference.fusedAttention computes internally. Set gate: false, or leave fusedAttention off.", gatedPrefix.site, ["gate"]);
  }
  const gated = merge ? trained.lora.find((record) => record.gate !== null) : undefined;
  if (gated) {
    const error = new SpecError("E_SPEC_MODEL", `defineSpec: option "inference.mergeAdapters" cannot fold the LoRA of ${gated.path}: a learned gate scales it per token, so it depends on the input. Set mergeAdapters to false, or train without gate.`, options.spec?.site, ["inference", "mergeAdapters"]);
    options.relocate?.(error);
    throw error;
  }
  const merged = merge ? mergeIntoWeights(model, trained.lora, trained.parameters, trained.ia3) : [];
  const adapter: AdapterPlans | null = options.adapterDir && !merge ? adapterPlans(options.adapterDir, discovery) : null;
  const shared = { mode: "eval" as const, modelFile: options.modelFile, values: new Map(trained.parameters.map((parameter) => [parameter.name, parameter.tensor])), skip: merge ? MERGED_METHODS : undefined, mergeAdapters: merge };
  const apply = (stage: "modules" | "sequence"): void => {
    try {
      applySpec(model, discovery, options.spec, { ...shared, stage, cached: stage === "sequence", extraLora: options.spec || !adapter ? [] : adapter.plans, initialLora: adapter?.values });
    } catch (error) {
      if (isSpecError(error)) options.relocate?.(error);
      throw error;
    }
  };
  apply("modules");
  if (!hasKvCache(model)) {
    addKvCache(model, discovery);
  } else if (fused) {
    throw new PeftcError("E_SPEC_MODEL", `${options.modelFile}: fusedAttention applies to graphs peftc gives a cache; this export has its own cache and attention, which stay as they are. Remove the option.`, { file: options.modelFile });
  }
  apply("sequence");
  if (fused) fuseAttentionCores(model, discovery);
  validateModel(model);
  const prefix = buildPrefixFolding(model, discovery, options.spec);
  if (prefix) validateModel(prefix);
  return { model, merged, prefix };
}
