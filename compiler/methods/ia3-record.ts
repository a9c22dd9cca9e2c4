import type { QkvLayout, QkvPart } from "../match/fused-qkv";
import type { WeightLayout } from "../match/module";

/**
 * One (IA)3 scaling vector: enough to rebuild it, to fold it into the base
 * weight, and to write it in Hugging Face PEFT's layout. The vector is a
 * 1-D graph input, [out] for an output scaling and [in] for an input
 * (feedforward) scaling. PEFT saves the same values as [out, 1] and [1, in].
 */
export interface Ia3Record {
  /** Target path: the module, or for a part of a fused QKV projection, the part (`layers.0.attn.k`). */
  path: string;
  /** Canonical path of the module whose weight the vector scales. */
  module: string;
  /** PyTorch module name of `module`, as PEFT adapter keys use it. */
  torchName: string;
  /** Part of a fused QKV projection, or null for a whole module. */
  part: QkvPart | null;
  /** True when the vector scales the module's input (PEFT's feedforward_modules), false when it scales the output. */
  feedforward: boolean;
  layout: WeightLayout;
  /** Name of the base weight initializer. */
  weight: string;
  /** Name of the base bias initializer, which an output scaling also scales; null without a bias. */
  bias: string | null;
  inFeatures: number;
  /** Output width of the target (the part's rows for a part). */
  outFeatures: number;
  /** Output width of the whole module. */
  moduleOutFeatures: number;
  /** Parameter name of the vector. */
  vector: string;
  /** Row layout of the fused projection, for a part. */
  qkv: QkvLayout | null;
}
