import { PeftcError } from "../../errors";
import { attr } from "../../ir/attribute";
import type { Node } from "../../ir/node";
import type { Value } from "../../ir/value";
import type { GradBuilder } from "../grad-builder";
import type { GradientRule } from "../rule";
import { wrapNegativeIndices, zerosOfShape } from "./index-arithmetic";

/** ScatterND and ScatterElements take `reduction="add"` from this opset. */
const SCATTER_ADD_OPSET = 16;

function requireRank(b: GradBuilder, node: Node, value: Value, role: string): number {
  const rank = b.rank(value);
  if (rank === undefined) {
    throw new PeftcError("E_SHAPE_INFERENCE", `${node.opType} node "${node.name}": the gradient needs the rank of the ${role}, which shape inference could not find.`, { node: node.name });
  }
  return rank;
}

/**
 * Builds a [N, size] one-hot matrix in `dtype` for the flattened `indices`,
 * which must be non-negative. A product with it replaces a scatter-add before
 * opset 16 and is exact, because every factor is 0 or 1, but it costs N·size
 * elements.
 */
function oneHot(b: GradBuilder, indices: Value, size: Value, dtype: number): Value {
  const classes = b.op("Range", [b.intScalar(0), size, b.intScalar(1)]);
  const matches = b.op("Equal", [b.op("Reshape", [indices, b.ints([-1, 1])]), classes]);
  return b.op("Cast", [matches], [attr.int("to", dtype)]);
}

/**
 * Gather: dx accumulates each dy row at the data row its index names, and
 * repeated indices add up. With the gathered axis a moved to the front,
 * data is [D_a, rest] and dy is [indices shape, rest]. From opset 16 that is
 * one ScatterND with reduction "add" into zeros. Before opset 16 it is a
 * one-hot matrix product, exact but with a [number of indices, D_a]
 * temporary. Negative indices wrap as Gather reads them. Indices get no
 * gradient.
 */
/** Reads what both gather rules need: the normalized axis, its runtime size and the indices with negatives wrapped. */
function gatheredAxis(b: GradBuilder, node: Node): { data: Value; indices: Value; rank: number; axis: number; dtype: number; size: Value; wrapped: Value } {
  const [data, indices] = node.inputs as Value[];
  const rank = requireRank(b, node, data, "data");
  const rawAxis = node.getInt("axis", 0);
  const axis = rawAxis < 0 ? rawAxis + rank : rawAxis;
  const size = b.op("Gather", [b.shape(data), b.intScalar(axis)]);
  return { data, indices, rank, axis, dtype: b.dtype(data), size, wrapped: wrapNegativeIndices(b, indices, size) };
}

export const gather: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  const { data, indices, rank, axis, dtype, size, wrapped } = gatheredAxis(b, node);
  const indexRank = requireRank(b, node, indices, "indices");
  const dy = context.outputGrads[0]!;

  // dy's axes are [data axes before a, index axes, data axes after a], and the index axes go first.
  const range = (start: number, end: number): number[] => Array.from({ length: end - start }, (_, i) => start + i);
  const moved = axis === 0 ? dy : b.op("Transpose", [dy], [attr.ints("perm", [...range(axis, axis + indexRank), ...range(0, axis), ...range(axis + indexRank, rank - 1 + indexRank)])]);
  const movedDataShape = axis === 0 ? b.shape(data) : b.op("Gather", [b.shape(data), b.ints([axis, ...range(0, axis), ...range(axis + 1, rank)])]);

  let movedGrad: Value;
  if (b.opset >= SCATTER_ADD_OPSET) {
    const zeros = zerosOfShape(b, movedDataShape, dtype);
    movedGrad = b.op("ScatterND", [zeros, b.unsqueeze(wrapped, [indexRank]), moved], [attr.string("reduction", "add")]);
  } else {
    const rows = b.op("Flatten", [moved], [attr.int("axis", indexRank)]);
    const product = b.op("Gemm", [oneHot(b, wrapped, size, dtype), rows], [attr.int("transA", 1)]);
    movedGrad = b.op("Reshape", [product, movedDataShape]);
  }
  if (axis === 0) return [movedGrad];
  return [b.op("Transpose", [movedGrad], [attr.ints("perm", [...range(1, axis + 1), 0, ...range(axis + 1, rank)])])];
};

/**
 * GatherElements: dx adds each dy element at the position its index names
 * along the axis. From opset 16 that is ScatterElements with reduction
 * "add". Before opset 16, a one-hot comparison along a new axis after the
 * gathered one is multiplied by dy and summed over the gathered axis, which
 * costs a temporary of the index count times the axis size. The sum is
 * zero-padded to data's shape where the indices are shorter on other axes.
 */
export const gatherElements: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  const { data, indices, rank, axis, dtype, size, wrapped } = gatheredAxis(b, node);
  const dy = context.outputGrads[0]!;

  if (b.opset >= SCATTER_ADD_OPSET) {
    const zeros = zerosOfShape(b, b.shape(data), dtype);
    return [b.op("ScatterElements", [zeros, wrapped, dy], [attr.int("axis", axis), attr.string("reduction", "add")])];
  }
  const classShape = Array.from({ length: rank + 1 }, (_, i) => (i === axis + 1 ? -1 : 1));
  const classes = b.op("Reshape", [b.op("Range", [b.intScalar(0), size, b.intScalar(1)]), b.ints(classShape)]);
  const matches = b.op("Cast", [b.op("Equal", [b.unsqueeze(wrapped, [axis + 1]), classes])], [attr.int("to", dtype)]);
  const spread = b.op("Mul", [matches, b.unsqueeze(dy, [axis + 1])]);
  const summed = b.reduceSum(spread, [axis], false);
  const shortfall = b.op("Sub", [b.shape(data), b.op("Shape", [summed])]);
  const pads = b.op("Concat", [b.ints(new Array<number>(rank).fill(0)), shortfall], [attr.int("axis", 0)]);
  return [b.op("Pad", [summed, pads], [attr.string("mode", "constant")])];
};
