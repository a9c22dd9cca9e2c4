/** Shape of one attention layer's prefix. */
export interface PrefixLayer {
  layer: number;
  kvHeads: number;
  headDim: number;
}

/**
 * Positions of each layer's key and value prefix in a flat
 * [virtual_tokens, Σ 2·kv_heads·head_dim] row, in Hugging Face PEFT's
 * order: per layer the key, then the value, each as [kv_heads, head_dim].
 * PEFT views its prompt embeddings as [batch, tokens, layers·2, heads,
 * head_dim] and permutes them to per-layer (key, value) pairs of [batch,
 * heads, tokens, head_dim], which is this layout with equal layers.
 */
export interface FlatPrefixLayout {
  virtualTokens: number;
  /** Row width: Σ 2·kv_heads·head_dim over the layers. */
  width: number;
  layers: { layer: PrefixLayer; keyOffset: number; valueOffset: number }[];
}

export function flatPrefixLayout(virtualTokens: number, layers: readonly PrefixLayer[]): FlatPrefixLayout {
  let offset = 0;
  const placed = layers.map((layer) => {
    const tokenDim = layer.kvHeads * layer.headDim;
    const entry = { layer, keyOffset: offset, valueOffset: offset + tokenDim };
    offset += 2 * tokenDim;
    return entry;
  });
  return { virtualTokens, width: offset, layers: placed };
}

/** Copies the [kv_heads, tokens, head_dim] prefix at `offset` out of flat rows [tokens, width]. */
export function prefixFromFlat(flat: Float32Array, layout: FlatPrefixLayout, layer: PrefixLayer, offset: number): Float32Array {
  const { virtualTokens, width } = layout;
  const out = new Float32Array(layer.kvHeads * virtualTokens * layer.headDim);
  for (let h = 0; h < layer.kvHeads; h++) {
    for (let n = 0; n < virtualTokens; n++) {
      for (let d = 0; d < layer.headDim; d++) out[(h * virtualTokens + n) * layer.headDim + d] = flat[n * width + offset + h * layer.headDim + d];
    }
  }
  return out;
}

/** Writes a [kv_heads, tokens, head_dim] prefix into flat rows [tokens, width] at `offset`, the inverse of prefixFromFlat. */
export function prefixIntoFlat(flat: Float32Array, layout: FlatPrefixLayout, layer: PrefixLayer, offset: number, prefix: Float32Array): void {
  const { virtualTokens, width } = layout;
  for (let h = 0; h < layer.kvHeads; h++) {
    for (let n = 0; n < virtualTokens; n++) {
      for (let d = 0; d < layer.headDim; d++) flat[n * width + offset + h * layer.headDim + d] = prefix[(h * virtualTokens + n) * layer.headDim + d];
    }
  }
}
