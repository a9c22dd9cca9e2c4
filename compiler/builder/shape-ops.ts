import { Value } from "../ir/value";
import { Scope } from "./model-builder";
import { concat, gather, int64Scalar, int64Vector, shape, unsqueeze } from "./ops";

/**
 * Shape arithmetic in the form torch.onnx emits for `x.size(i)` and
 * `x.view(a, b, ...)`: a Shape, a Gather of one dimension as an int64
 * scalar, and an Unsqueeze/Concat that assembles the target shape. Graphs
 * built this way keep batch and sequence dynamic.
 */

/** Returns `x.size(axis)` as an int64 scalar: Shape, then Gather of one index. */
export function dimension(scope: Scope, x: Value, axis: number): Value {
  return gather(scope, shape(scope, x), int64Scalar(scope, axis), 0);
}

/**
 * Returns a 1-D int64 shape from parts: int64 scalars (dynamic dimensions
 * from `dimension`) are unsqueezed to length 1, numbers become one-element
 * constants, and the pieces are concatenated.
 */
export function shapeOf(scope: Scope, parts: readonly (Value | number)[]): Value {
  const pieces = parts.map((part) => (typeof part === "number" ? int64Vector(scope, [part]) : unsqueeze(scope, part, [0])));
  return concat(scope, pieces, 0);
}
