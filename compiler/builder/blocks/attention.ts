import { Value } from "../../ir/value";
import { Scope } from "../model-builder";
import { add, div, expand, floatScalar, matMul, reshape, softmax, split, transpose, unsqueeze } from "../ops";
import { dimension, shapeOf } from "../shape-ops";
import { LinearLayout, linear } from "./linear";
import { RotaryTables, applyRotary } from "./rotary";

/** Dynamic batch and sequence sizes, as int64 scalars. */
export interface SequenceDims {
  batch: Value;
  sequence: Value;
}

/** Reshapes [batch, sequence, heads · headDim] to [batch, sequence, heads, headDim] and transposes to [batch, heads, sequence, headDim]. */
export function splitHeads(scope: Scope, x: Value, dims: SequenceDims, heads: number, headDim: number): Value {
  const perHead = reshape(scope, x, shapeOf(scope, [dims.batch, dims.sequence, heads, headDim]));
  return transpose(scope, perHead, [0, 2, 1, 3]);
}

/** Undoes splitHeads: [batch, heads, sequence, headDim] to [batch, sequence, heads · headDim]. */
export function mergeHeads(scope: Scope, x: Value, dims: SequenceDims, width: number): Value {
  const sequenceMajor = transpose(scope, x, [0, 2, 1, 3]);
  return reshape(scope, sequenceMajor, shapeOf(scope, [dims.batch, dims.sequence, width]));
}

/**
 * Repeats each of `kvHeads` key or value heads `groups` times for
 * grouped-query attention, in the form Hugging Face's repeat_kv exports.
 * [b, kvHeads, s, d] goes through Unsqueeze, Expand to
 * [b, kvHeads, groups, s, d] and Reshape to [b, kvHeads · groups, s, d].
 * The sizes b and s are read from the input.
 */
export function repeatKeyValue(scope: Scope, x: Value, kvHeads: number, groups: number, headDim: number): Value {
  const batch = dimension(scope, x, 0);
  const sequence = dimension(scope, x, 2);
  const expanded = expand(scope, unsqueeze(scope, x, [2]), shapeOf(scope, [batch, kvHeads, groups, sequence, headDim]));
  return reshape(scope, expanded, shapeOf(scope, [batch, kvHeads * groups, sequence, headDim]));
}

/**
 * Computes softmax(q · kᵀ / √headDim + mask) · v for q, k, v of shape
 * [batch, heads, sequence, headDim] and an additive mask that broadcasts
 * to [batch, heads, sequence, sequence].
 */
export function scaledDotProductAttention(scope: Scope, q: Value, k: Value, v: Value, mask: Value, headDim: number): Value {
  const scores = matMul(scope, q, transpose(scope, k, [0, 1, 3, 2]));
  const scaled = div(scope, scores, floatScalar(scope, Math.sqrt(headDim)));
  const probabilities = softmax(scope, add(scope, scaled, mask), -1);
  return matMul(scope, probabilities, v);
}

/** Module names of the query, key and value projections: one fused module (GPT-2's c_attn) or three. */
export type ProjectionNames = { fused: string } | { query: string; key: string; value: string };

export interface SelfAttentionOptions {
  hidden: number;
  heads: number;
  /** Key and value heads, default `heads`. Fewer than `heads` gives grouped-query attention. */
  kvHeads?: number;
  /** Default hidden / heads. */
  headDim?: number;
  projections: ProjectionNames;
  layout: LinearLayout;
  bias: boolean;
  /** Additive mask broadcasting to [batch, heads, sequence, sequence]. */
  mask: Value;
  /** Rotary tables applied to q and k after the head split, as in LLaMA. */
  rotary?: RotaryTables;
}

/**
 * Builds self-attention in the module at `scope` up to the merged heads,
 * [batch, sequence, heads · headDim]. The caller adds the output
 * projection, because its module name and place differ between
 * architectures.
 */
export function selfAttention(scope: Scope, x: Value, options: SelfAttentionOptions): Value {
  const { hidden, heads } = options;
  const kvHeads = options.kvHeads ?? heads;
  const headDim = options.headDim ?? hidden / heads;
  if (!Number.isInteger(headDim) || heads % kvHeads !== 0) {
    throw new RangeError(`invalid attention shape: hidden ${hidden}, ${heads} heads, ${kvHeads} key/value heads; heads must divide hidden and kvHeads must divide heads.`);
  }
  const dims = { batch: dimension(scope, x, 0), sequence: dimension(scope, x, 1) };
  const [query, key, value] = projectQueryKeyValue(scope, x, options, headDim, kvHeads);

  let q = splitHeads(scope, query, dims, heads, headDim);
  let k = splitHeads(scope, key, dims, kvHeads, headDim);
  let v = splitHeads(scope, value, dims, kvHeads, headDim);
  if (options.rotary) {
    q = applyRotary(scope, q, options.rotary);
    k = applyRotary(scope, k, options.rotary);
  }
  if (kvHeads !== heads) {
    k = repeatKeyValue(scope, k, kvHeads, heads / kvHeads, headDim);
    v = repeatKeyValue(scope, v, kvHeads, heads / kvHeads, headDim);
  }
  const context = scaledDotProductAttention(scope, q, k, v, options.mask, headDim);
  return mergeHeads(scope, context, dims, heads * headDim);
}

function projectQueryKeyValue(scope: Scope, x: Value, options: SelfAttentionOptions, headDim: number, kvHeads: number): Value[] {
  const queryWidth = options.heads * headDim;
  const kvWidth = kvHeads * headDim;
  const { hidden, layout, bias, projections } = options;
  if ("fused" in projections) {
    const fused = linear(scope.child(projections.fused), x, { inFeatures: hidden, outFeatures: queryWidth + 2 * kvWidth, layout, bias });
    return split(scope, fused.output, [queryWidth, kvWidth, kvWidth], 2);
  }
  return [
    linear(scope.child(projections.query), x, { inFeatures: hidden, outFeatures: queryWidth, layout, bias }).output,
    linear(scope.child(projections.key), x, { inFeatures: hidden, outFeatures: kvWidth, layout, bias }).output,
    linear(scope.child(projections.value), x, { inFeatures: hidden, outFeatures: kvWidth, layout, bias }).output,
  ];
}
