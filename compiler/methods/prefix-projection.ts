import type { GradBuilder } from "../autodiff/grad-builder";
import { attr } from "../ir/attribute";
import type { Value } from "../ir/value";
import { type FlatPrefixLayout, prefixFromFlat } from "./prefix-layout";

/**
 * Parameter names of the reparameterisation, after PEFT's PrefixEncoder:
 * an embedding [tokens, token_dim], then Linear(token_dim, hidden), tanh,
 * Linear(hidden, Σ 2·kv_heads·head_dim). Weights are stored [out, in], as
 * PyTorch's Linear stores them.
 */
export const PROJECTION_NAMES = {
  embedding: "prefix.embedding.weight",
  firstWeight: "prefix.transform.0.weight",
  firstBias: "prefix.transform.0.bias",
  secondWeight: "prefix.transform.2.weight",
  secondBias: "prefix.transform.2.bias",
} as const;

/** Names of a layer's key and value prefix tensors: trainable without a projection, folded inputs of infer.onnx with one. */
export function prefixNames(layer: number): { key: string; value: string } {
  return { key: `prefix.layers.${layer}.key`, value: `prefix.layers.${layer}.value` };
}

/** The projection's tensors as graph values. */
export interface ProjectionValues {
  embedding: Value;
  firstWeight: Value;
  firstBias: Value;
  secondWeight: Value;
  secondBias: Value;
}

/** Adds the MLP and returns each layer's key and value prefix [kv_heads, tokens, head_dim], in the order of `layout.layers`. */
export function buildProjection(b: GradBuilder, values: ProjectionValues, layout: FlatPrefixLayout): { key: Value; value: Value }[] {
  const hidden = b.op("Tanh", [b.op("Gemm", [values.embedding, values.firstWeight, values.firstBias], [attr.int("transB", 1)])]);
  const flat = b.op("Gemm", [hidden, values.secondWeight, values.secondBias], [attr.int("transB", 1)]);
  const perLayer = (offset: number, kvHeads: number, headDim: number): Value => {
    const columns = b.op("Slice", [flat, b.ints([offset]), b.ints([offset + kvHeads * headDim]), b.ints([1])]);
    const heads = b.op("Reshape", [columns, b.ints([layout.virtualTokens, kvHeads, headDim])]);
    return b.op("Transpose", [heads], [attr.ints("perm", [1, 0, 2])]);
  };
  return layout.layers.map(({ layer, keyOffset, valueOffset }) => ({ key: perLayer(keyOffset, layer.kvHeads, layer.headDim), value: perLayer(valueOffset, layer.kvHeads, layer.headDim) }));
}

/** Plain values of the projection's tensors. */
export interface ProjectionArrays {
  embedding: Float32Array;
  firstWeight: Float32Array;
  firstBias: Float32Array;
  secondWeight: Float32Array;
  secondBias: Float32Array;
}

/** Runs the MLP on the CPU: returns the flat prefix rows [tokens, width], as PEFT's PrefixEncoder computes them. */
export function projectFlat(arrays: ProjectionArrays, layout: FlatPrefixLayout, tokenDim: number, hiddenWidth: number): Float32Array {
  const { virtualTokens, width } = layout;
  const flat = new Float32Array(virtualTokens * width);
  const hidden = new Float32Array(hiddenWidth);
  for (let n = 0; n < virtualTokens; n++) {
    for (let j = 0; j < hiddenWidth; j++) {
      let sum = arrays.firstBias[j];
      for (let i = 0; i < tokenDim; i++) sum += arrays.embedding[n * tokenDim + i] * arrays.firstWeight[j * tokenDim + i];
      hidden[j] = Math.tanh(sum);
    }
    for (let k = 0; k < width; k++) {
      let sum = arrays.secondBias[k];
      for (let j = 0; j < hiddenWidth; j++) sum += hidden[j] * arrays.secondWeight[k * hiddenWidth + j];
      flat[n * width + k] = sum;
    }
  }
  return flat;
}

/** Folds the projection into each layer's key and value prefix [kv_heads, tokens, head_dim], by tensor name. */
export function foldProjection(arrays: ProjectionArrays, layout: FlatPrefixLayout, tokenDim: number, hiddenWidth: number): Map<string, Float32Array> {
  const flat = projectFlat(arrays, layout, tokenDim, hiddenWidth);
  const folded = new Map<string, Float32Array>();
  for (const { layer, keyOffset, valueOffset } of layout.layers) {
    const names = prefixNames(layer.layer);
    folded.set(names.key, prefixFromFlat(flat, layout, layer, keyOffset));
    folded.set(names.value, prefixFromFlat(flat, layout, layer, valueOffset));
  }
  return folded;
}
