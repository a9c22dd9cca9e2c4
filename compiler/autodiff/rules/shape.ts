import { PeftcError } from "../../errors";
import { attr } from "../../ir/attribute";
import type { Value } from "../../ir/value";
import { constantInts } from "../../match/graph-walk";
import { unbroadcast } from "../broadcast";
import type { GradientRule } from "../rule";
import { concatInts } from "./index-arithmetic";

/**
 * Reshape, Flatten, Squeeze and Unsqueeze keep the element order, so the
 * gradient is reshaped to the input's runtime shape. From opset 14,
 * `allowzero` makes a 0 in that shape mean an empty axis, not "copy this dim".
 */
export const reshapeBack: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  const attributes = b.opset >= 14 ? [attr.int("allowzero", 1)] : [];
  return [b.op("Reshape", [context.outputGrads[0]!, b.shape(node.inputs[0]!)], attributes)];
};

/** Transposes the gradient by the inverse permutation; without `perm`, Transpose reverses the axes, which is its own inverse. */
export const transpose: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const perm = node.getInts("perm");
  if (!perm) return [b.op("Transpose", [dy])];
  const inverse = new Array<number>(perm.length);
  perm.forEach((axis, position) => (inverse[axis] = position));
  return [b.op("Transpose", [dy], [attr.ints("perm", inverse)])];
};

/** Expand broadcasts like a binary op, so the gradient sums over the broadcast axes. */
export const expand: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  return [unbroadcast(b, context.outputGrads[0]!, node.inputs[0]!, b.dims(node.outputs[0]))];
};

/**
 * Tile: the output along axis i is r_i copies of the input's d_i elements,
 * so the gradient reshaped to [r_0, d_0, r_1, d_1, ...] and summed over the
 * r axes is the input's gradient. Repeats may be computed at run time.
 */
export const tile: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  const [x, repeats] = node.inputs as Value[];
  const rank = b.rank(x);
  if (rank === undefined) {
    throw new PeftcError("E_SHAPE_INFERENCE", `Tile node "${node.name}": the gradient needs the input's rank, which shape inference could not find.`, { node: node.name });
  }
  const repeatCounts = constantInts(repeats);
  const dims = b.dims(x)!;
  let interleaved: Value;
  if (repeatCounts && dims.every((dim): dim is number => typeof dim === "number")) {
    interleaved = concatInts(b, dims.flatMap((dim, axis) => [repeatCounts[axis], dim]));
  } else {
    // Stack [repeats, shape] as columns of a [rank, 2] matrix and read it row by row.
    const pairs = b.op("Concat", [b.unsqueeze(repeats, [1]), b.unsqueeze(b.shape(x), [1])], [attr.int("axis", 1)]);
    interleaved = b.op("Reshape", [pairs, b.ints([-1])]);
  }
  const grouped = b.op("Reshape", [context.outputGrads[0]!, interleaved]);
  const repeatAxes = Array.from({ length: rank }, (_, axis) => 2 * axis);
  return [b.reduceSum(grouped, repeatAxes, false)];
};
