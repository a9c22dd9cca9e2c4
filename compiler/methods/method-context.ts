import type { SpecWarning } from "../dsl/match";
import type { SourceSite } from "../dsl/site";
import type { Target } from "../dsl/targets";
import type { Model } from "../ir/model";
import type { Discovery } from "../match/discover";
import type { Value } from "../ir/value";
import type { Tensor } from "../onnx/tensor";
import type { TrainableParameter } from "./parameters";
import type { Ia3Record } from "./ia3-record";
import type { PrefixTuningRecord } from "./prefix-record";

/** Whether the rewritten graph trains (dropout active) or evaluates (no dropout). */
export type GraphMode = "train" | "eval";

/** The input of a method's rewrite: the model, the modules discovery found in it, and how the graph will be used. */
export interface MethodContext {
  model: Model;
  discovery: Discovery;
  /** Every module and fused part a selector can choose, as `selectionTargets` lists them. */
  targets: readonly Target[];
  mode: GraphMode;
  seed: number;
  /**
   * True in infer.onnx, where the rewrite runs after the KV cache was
   * added: sequence methods (prompt and prefix tuning) then work on the
   * cached keys, values and mask.
   */
  cached: boolean;
  /** The base model file; a tokenizer.json beside it can initialise virtual tokens from text. */
  modelFile?: string;
  /**
   * Values of the trainable tensors by name (initial, from an adapter
   * file, or trained), for rewrites that fold them into constants in
   * infer.onnx.
   */
  values?: ReadonlyMap<string, Tensor>;
  /** True in infer.onnx built with `inference.mergeAdapters`: rewrites fold `values` into constants rather than reading graph inputs. */
  mergeAdapters?: boolean;
}

/** A method resolved against the model: checked, not yet applied. */
export interface PlannedMethod {
  /** Places of the model the method changes, checked against the other methods' before anything is inserted. */
  claims: Claim[];
  warnings: SpecWarning[];
  /** Rewrites the model in place. */
  insert(context: MethodContext): MethodResult;
}

/** The tensors and warnings a method's rewrite added. */
export interface MethodResult {
  parameters: TrainableParameter[];
  warnings: SpecWarning[];
  /**
   * Logits [batch, sequence, vocab] of the position before each label, for
   * a causal LM loss to read unshifted. Prompt tuning sets it so the first
   * real token is predicted from the last virtual token.
   */
  precedingLogits?: Value;
  /** (IA)3 vectors the rewrite added, for merging them into the weights and exporting them. */
  ia3?: Ia3Record[];
  /** The prefix tuning the rewrite added, for the manifest and the PEFT adapter export. */
  prefix?: PrefixTuningRecord;
}

/**
 * A place in the model that a method changes, such as the output of
 * `layers.0.attn.o` for a serial adapter. Two methods that claim the same
 * key cannot share it, and `description` and `site` name the claim in the error.
 */
export interface Claim {
  key: string;
  /** The method and its change there, such as "adapter (serial, after the sublayer)". */
  description: string;
  site: SourceSite | undefined;
}
