import { attr } from "../ir/attribute";
import type { Dim } from "../ir/types";
import type { Value } from "../ir/value";
import { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import type { GradBuilder } from "./grad-builder";

/**
 * Undoes numpy broadcasting for a gradient: sums `grad` (of shape
 * `outputDims`, the broadcast shape) over the axes along which `input` was
 * broadcast, and brings it to `input`'s shape. Axes are read from the
 * static shapes where they decide it: a leading axis the input lacks, or a
 * literal 1 against anything else. When a dim is unknown, the axes are
 * computed at run time from both shapes, so symbolic dims that
 * turn out to be 1 are still summed.
 */
export function unbroadcast(b: GradBuilder, grad: Value, input: Value, outputDims: readonly Dim[] | undefined): Value {
  const inputDims = b.dims(input);
  if (inputDims && outputDims) {
    const leading = outputDims.length - inputDims.length;
    const axes: number[] = [];
    let decided = true;
    for (let axis = 0; axis < outputDims.length; axis++) {
      if (axis < leading) {
        axes.push(axis);
        continue;
      }
      const inputDim = inputDims[axis - leading];
      const outputDim = outputDims[axis];
      if (inputDim === outputDim && inputDim !== null) continue;
      if (inputDim === 1) {
        if (outputDim !== 1) axes.push(axis);
        continue;
      }
      // A known size other than 1, or a symbolic dim, is never broadcast in a valid graph.
      if (inputDim !== null) continue;
      decided = false;
    }
    if (decided) {
      if (axes.length === 0 && leading === 0) return grad;
      // Sum the input's own axes keeping them as 1, then drop the leading axes it lacks.
      const summed = b.reduceSum(grad, axes.filter((axis) => axis >= leading), true);
      return b.reduceSum(summed, axes.filter((axis) => axis < leading), false);
    }
  }
  return dynamicUnbroadcast(b, grad, input);
}

/**
 * Computes the broadcast axes at run time: the input's shape is padded with
 * leading 1s to the gradient's rank, and every axis where the padded input
 * has 1 and the gradient does not is summed.
 */
function dynamicUnbroadcast(b: GradBuilder, grad: Value, input: Value): Value {
  const gradShape = b.shape(grad);
  const inputShape = b.shape(input);
  const gradRank = b.op("Shape", [gradShape]);
  const inputRank = b.op("Shape", [inputShape]);
  const padding = b.op("Sub", [gradRank, inputRank]);
  const ones = b.op("ConstantOfShape", [padding], [attr.tensor("value", Tensor.fromArray("one", DataType.INT64, [1], BigInt64Array.of(1n)))]);
  const padded = b.op("Concat", [ones, inputShape], [attr.int("axis", 0)]);
  const one = b.ints([1]);
  const broadcast = b.op("And", [b.op("Equal", [padded, one]), b.op("Not", [b.op("Equal", [gradShape, one])])]);
  const axes = b.op("Reshape", [b.op("NonZero", [broadcast]), b.ints([-1])]);
  const summed = b.op("ReduceSum", [grad, axes], [attr.int("keepdims", 1), attr.int("noop_with_empty_axes", 1)]);
  return b.op("Reshape", [summed, inputShape]);
}
