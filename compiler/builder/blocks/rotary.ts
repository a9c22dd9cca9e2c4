import { DataType } from "../../onnx/dtype";
import { Value } from "../../ir/value";
import { Scope } from "../model-builder";
import { add, cast, concat, cos, floatVector, int64Scalar, mul, neg, range, sin, slice, unsqueeze } from "../ops";
import { power } from "../portable-math";

/** The cosine and sine tables of rotary position embeddings, float32 [sequence, headDim]. */
export interface RotaryTables {
  cos: Value;
  sin: Value;
  headDim: number;
}

/**
 * Returns inv_freq[i] = base^(-2i / headDim) for i < headDim / 2, the
 * rotation frequencies of Hugging Face's LLaMA rotary embedding, computed
 * with portable arithmetic so the stored constant is identical everywhere.
 */
export function rotaryInverseFrequencies(headDim: number, base: number): Float32Array {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new RangeError(`invalid rotary head dimension ${headDim}: expected a positive even integer.`);
  }
  return Float32Array.from({ length: headDim / 2 }, (_, i) => power(base, (-2 * i) / headDim));
}

/**
 * Builds the rotary tables for positions 0 … sequence-1 (`sequence` is an
 * int64 scalar): angles = position · inv_freq, duplicated to the full head
 * dimension as cat(angles, angles), then Cos and Sin.
 */
export function rotaryTables(scope: Scope, sequence: Value, options: { headDim: number; base: number }): RotaryTables {
  const inverseFrequencies = floatVector(scope, rotaryInverseFrequencies(options.headDim, options.base));
  const positions = cast(scope, range(scope, int64Scalar(scope, 0), sequence, int64Scalar(scope, 1)), DataType.FLOAT);
  const angles = mul(scope, unsqueeze(scope, positions, [1]), inverseFrequencies);
  const fullAngles = concat(scope, [angles, angles], -1);
  return { cos: cos(scope, fullAngles), sin: sin(scope, fullAngles), headDim: options.headDim };
}

/**
 * Rotates q or k, [batch, heads, sequence, headDim], by the tables:
 * x · cos + rotate_half(x) · sin, where rotate_half(x) = cat(-x2, x1) for
 * the two halves x1, x2 of the last axis (Hugging Face's layout, not the
 * interleaved pairs of the original LLaMA code).
 */
export function applyRotary(scope: Scope, x: Value, tables: RotaryTables): Value {
  const half = tables.headDim / 2;
  const firstHalf = slice(scope, x, [0], [half], [-1]);
  const secondHalf = slice(scope, x, [half], [tables.headDim], [-1]);
  const rotated = concat(scope, [neg(scope, secondHalf), firstHalf], -1);
  return add(scope, mul(scope, x, tables.cos), mul(scope, rotated, tables.sin));
}
