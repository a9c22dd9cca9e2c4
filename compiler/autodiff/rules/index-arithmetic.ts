import { attr } from "../../ir/attribute";
import type { Value } from "../../ir/value";
import { DataType } from "../../onnx/dtype";
import { Tensor } from "../../onnx/tensor";
import type { GradBuilder } from "../grad-builder";

/**
 * A size, offset or index for one axis: a number when it is known while
 * compiling, or a 1-D int64 value of length 1 computed at run time. The
 * helpers below fold numbers, so static shapes give constant operands.
 */
export type IntOperand = number | Value;

/** Converts an operand to a 1-D int64 value of length 1. */
export function intValue(b: GradBuilder, operand: IntOperand): Value {
  return typeof operand === "number" ? b.ints([operand]) : operand;
}

export function addInts(b: GradBuilder, left: IntOperand, right: IntOperand): IntOperand {
  if (typeof left === "number" && typeof right === "number") return left + right;
  if (left === 0) return right;
  if (right === 0) return left;
  return b.op("Add", [intValue(b, left), intValue(b, right)]);
}

export function subInts(b: GradBuilder, left: IntOperand, right: IntOperand): IntOperand {
  if (typeof left === "number" && typeof right === "number") return left - right;
  if (right === 0) return left;
  return b.op("Sub", [intValue(b, left), intValue(b, right)]);
}

/** The size of `value` along `axis` (negative counts from the end): the static dim when shape inference found it, else read from its runtime shape. */
export function dimOf(b: GradBuilder, value: Value, axis: number): IntOperand {
  const dims = b.dims(value);
  if (dims) {
    const dim = dims[axis < 0 ? axis + dims.length : axis];
    if (typeof dim === "number") return dim;
  }
  return b.op("Gather", [b.shape(value), b.ints([axis])]);
}

/** Concatenates `operands` into a 1-D int64 value, folded to a constant when all are numbers. */
export function concatInts(b: GradBuilder, operands: readonly IntOperand[]): Value {
  if (operands.every((operand): operand is number => typeof operand === "number")) return b.ints(operands);
  return b.op(
    "Concat",
    operands.map((operand) => intValue(b, operand)),
    [attr.int("axis", 0)],
  );
}

/**
 * Zeros of `dtype` with the runtime shape `shape` (a 1-D int64 value).
 * Unlike multiplying a forward value by 0, this gives exact zeros when that
 * value contains infinities or NaNs, and it does not keep the value alive.
 */
export function zerosOfShape(b: GradBuilder, shape: Value, dtype: DataType): Value {
  // Every float type encodes 0 as all-zero bytes, so a zeroed array of the decoded type fits each of them.
  const zero = Tensor.fromArray("zero", dtype, [1], dtype === DataType.DOUBLE ? new Float64Array(1) : new Float32Array(1));
  return b.op("ConstantOfShape", [shape], [attr.tensor("value", zero)]);
}

/** Converts an index tensor (int32 or int64) to int64 and adds `size` to its negative entries, as Gather and Slice do. */
export function wrapNegativeIndices(b: GradBuilder, indices: Value, size: Value): Value {
  const wide = b.dtype(indices) === DataType.INT64 ? indices : b.op("Cast", [indices], [attr.int("to", DataType.INT64)]);
  const negative = b.op("Less", [wide, b.intScalar(0)]);
  return b.op("Where", [negative, b.op("Add", [wide, size]), wide]);
}
