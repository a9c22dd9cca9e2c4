import type { QkvLayout, QkvPart } from "../match/fused-qkv";
import type { WeightLayout } from "../match/module";
import type { Tensor } from "../onnx/tensor";

/**
 * Why a tensor trains: a LoRA matrix, an existing bias unfrozen by LoRA's
 * `bias` or tensor by its `train`, or an existing tensor a selective method
 * unfroze (BitFit's biases, LayerNorm tuning's norms, `unfreeze`'s modules),
 * an adapter's projections, an (IA)3 vector, virtual-token embeddings, a
 * prefix (or its MLP), or a UniPELT gate.
 */
export type ParameterMethod = "lora" | "bias" | "train" | "bitfit" | "layernorm" | "unfreeze" | "adapter" | "ia3" | "prompt" | "prefix" | "gate";

/** A trainable tensor of the PEFT graph: a graph input with a same-named default initializer. */
export interface TrainableParameter {
  /** Graph value name, also the key in params.safetensors. */
  name: string;
  shape: number[];
  /** ONNX dtype name, such as "float32". */
  dtype: string;
  /** Origin of the initial values, such as "kaiming_uniform(a=sqrt(5))", "zeros" or "base". */
  init: string;
  /** Canonical path of the module the tensor belongs to. */
  module: string;
  method: ParameterMethod;
  /** True for a tensor a method added, false for an existing tensor it unfroze. */
  created: boolean;
  /** Initial values. */
  tensor: Tensor;
}

/**
 * One LoRA branch: enough to rebuild the update W + scale · (B · A) of a
 * module, to merge it, and to write it in Hugging Face PEFT's layout.
 * A is stored as [rank, in] and B as [out, rank], PEFT's `lora_A.weight`
 * and `lora_B.weight` shapes.
 */
export interface LoraRecord {
  /** Target path: the module, or for a part of a fused QKV projection, the part (`layers.0.attn.q`). */
  path: string;
  /** Canonical path of the module whose weight the update adds to. */
  module: string;
  /** PyTorch module name of `module`, as PEFT adapter keys use it. */
  torchName: string;
  /** Part of a fused QKV projection, or null for a whole module. */
  part: QkvPart | null;
  /** Storage layout of the base weight. */
  layout: WeightLayout;
  /** Name of the base weight initializer. */
  weight: string;
  inFeatures: number;
  /** Output width of the target (the part's rows for a part). */
  outFeatures: number;
  rank: number;
  alpha: number;
  rsLora: boolean;
  /** alpha / rank, or alpha / sqrt(rank) with rsLora. */
  scale: number;
  dropout: number;
  /** Parameter names of A [rank, in] and B [out, rank]. */
  a: string;
  b: string;
  /** Row layout of the fused projection, for a part. */
  qkv: QkvLayout | null;
  /**
   * Parameter name of the gate weight [in, 1] when a learned gate scales the
   * module's update, or null without one. The gate's bias has the same name
   * with `.weight` replaced by `.bias`.
   */
  gate: string | null;
}
