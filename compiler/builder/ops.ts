import { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import { attr } from "../ir/attribute";
import { Value } from "../ir/value";
import { Scope } from "./model-builder";

/**
 * One helper per ONNX operator the recipes use. Each builds one node in
 * `scope` (plus Constant nodes for attribute-like inputs, as torch.onnx
 * emits them) and returns its output.
 */

/** Adds a Constant node holding `tensor`. */
export function constant(scope: Scope, tensor: Tensor): Value {
  return scope.op("Constant", [], [attr.tensor("value", tensor)]);
}

/** Adds a float32 scalar Constant. */
export function floatScalar(scope: Scope, value: number): Value {
  return constant(scope, Tensor.fromArray("", DataType.FLOAT, [], Float32Array.of(value)));
}

/** Adds an int64 scalar Constant. */
export function int64Scalar(scope: Scope, value: number): Value {
  return constant(scope, Tensor.fromArray("", DataType.INT64, [], BigInt64Array.of(BigInt(value))));
}

/** Adds a 1-D int64 Constant. */
export function int64Vector(scope: Scope, values: readonly number[]): Value {
  return constant(scope, Tensor.fromArray("", DataType.INT64, [values.length], BigInt64Array.from(values, BigInt)));
}

/** Adds a 1-D float32 Constant. */
export function floatVector(scope: Scope, values: ArrayLike<number>): Value {
  return constant(scope, Tensor.fromArray("", DataType.FLOAT, [values.length], Float32Array.from(values)));
}

export const matMul = (scope: Scope, a: Value, b: Value): Value => scope.op("MatMul", [a, b]);
export const add = (scope: Scope, a: Value, b: Value): Value => scope.op("Add", [a, b]);
export const sub = (scope: Scope, a: Value, b: Value): Value => scope.op("Sub", [a, b]);
export const mul = (scope: Scope, a: Value, b: Value): Value => scope.op("Mul", [a, b]);
export const div = (scope: Scope, a: Value, b: Value): Value => scope.op("Div", [a, b]);
export const pow = (scope: Scope, base: Value, exponent: Value): Value => scope.op("Pow", [base, exponent]);
export const sqrt = (scope: Scope, x: Value): Value => scope.op("Sqrt", [x]);
export const neg = (scope: Scope, x: Value): Value => scope.op("Neg", [x]);
export const tanh = (scope: Scope, x: Value): Value => scope.op("Tanh", [x]);
export const erf = (scope: Scope, x: Value): Value => scope.op("Erf", [x]);
export const sigmoid = (scope: Scope, x: Value): Value => scope.op("Sigmoid", [x]);
export const cos = (scope: Scope, x: Value): Value => scope.op("Cos", [x]);
export const sin = (scope: Scope, x: Value): Value => scope.op("Sin", [x]);
export const equal = (scope: Scope, a: Value, b: Value): Value => scope.op("Equal", [a, b]);
export const greater = (scope: Scope, a: Value, b: Value): Value => scope.op("Greater", [a, b]);
export const or = (scope: Scope, a: Value, b: Value): Value => scope.op("Or", [a, b]);
export const where = (scope: Scope, condition: Value, x: Value, y: Value): Value => scope.op("Where", [condition, x, y]);
export const shape = (scope: Scope, x: Value): Value => scope.op("Shape", [x]);
export const reshape = (scope: Scope, x: Value, targetShape: Value): Value => scope.op("Reshape", [x, targetShape], [attr.int("allowzero", 0)]);
export const expand = (scope: Scope, x: Value, targetShape: Value): Value => scope.op("Expand", [x, targetShape]);
export const range = (scope: Scope, start: Value, limit: Value, delta: Value): Value => scope.op("Range", [start, limit, delta]);

export function softmax(scope: Scope, x: Value, axis = -1): Value {
  return scope.op("Softmax", [x], [attr.int("axis", axis)]);
}

export function transpose(scope: Scope, x: Value, perm: readonly number[]): Value {
  return scope.op("Transpose", [x], [attr.ints("perm", perm)]);
}

export function cast(scope: Scope, x: Value, to: DataType): Value {
  return scope.op("Cast", [x], [attr.int("to", to)]);
}

export function concat(scope: Scope, values: readonly Value[], axis: number): Value {
  return scope.op("Concat", values, [attr.int("axis", axis)]);
}

export function gather(scope: Scope, data: Value, indices: Value, axis = 0): Value {
  return scope.op("Gather", [data, indices], [attr.int("axis", axis)]);
}

/** Unsqueeze with the axes as an input, the form of opset 13 and later. */
export function unsqueeze(scope: Scope, x: Value, axes: readonly number[]): Value {
  return scope.op("Unsqueeze", [x, int64Vector(scope, axes)]);
}

/** ReduceMean over `axes`: an attribute before opset 18, an input from opset 18. */
export function reduceMean(scope: Scope, x: Value, axes: readonly number[], keepdims = true): Value {
  const keep = attr.int("keepdims", keepdims ? 1 : 0);
  if (scope.opset >= 18) return scope.op("ReduceMean", [x, int64Vector(scope, axes)], [keep]);
  return scope.op("ReduceMean", [x], [attr.ints("axes", axes), keep]);
}

/** Splits `x` into pieces of the given sizes, passed as an input (the form of opset 13 and later). */
export function split(scope: Scope, x: Value, sizes: readonly number[], axis: number): Value[] {
  const node = scope.node("Split", [x, int64Vector(scope, sizes)], { attributes: [attr.int("axis", axis)], outputs: sizes.length });
  return [...node.outputs];
}

/** Slice with constant starts, ends and axes (steps of 1). */
export function slice(scope: Scope, x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[]): Value {
  return scope.op("Slice", [x, int64Vector(scope, starts), int64Vector(scope, ends), int64Vector(scope, axes)]);
}

/** Gemm computing a · bᵀ + c when `transB`, as torch.onnx exports nn.Linear on 2-D input. */
export function gemm(scope: Scope, a: Value, b: Value, c: Value | undefined, options: { transB: boolean }): Value {
  const attributes = [attr.float("alpha", 1), attr.float("beta", 1)];
  if (options.transB) attributes.push(attr.int("transB", 1));
  return scope.op("Gemm", [a, b, c], attributes);
}
