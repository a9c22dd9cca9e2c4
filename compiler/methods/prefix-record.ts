import type { PrefixLayer } from "./prefix-layout";

/** A prefix tuning as applied to a model, for the manifest and the PEFT adapter export. */
export interface PrefixTuningRecord {
  virtualTokens: number;
  /** The prefixed attention layers in graph order, with their key/value head counts and head sizes. */
  layers: PrefixLayer[];
  /** Attention blocks in the model, prefixed or not. */
  numLayers: number;
  /** Query heads of the first prefixed block; null when discovery could not read them. */
  numAttentionHeads: number | null;
  /** kv_heads · head_dim of the first prefixed layer: PEFT's token_dim after its grouped-query adjustment. */
  tokenDim: number;
  /** Hidden width of the reparameterisation MLP; null without one. */
  projectionHidden: number | null;
  gate: boolean;
}
