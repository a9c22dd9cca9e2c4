import { DataType } from "../../onnx/dtype";
import { Tensor } from "../../onnx/tensor";
import { Dim } from "../types";

/**
 * The element values of a small tensor that inference has determined,
 * row-major. Each value is a number, a symbolic dimension (for values read
 * from a Shape) or null when unknown. These values let
 * `Reshape(x, Concat(Shape(x)[0], Shape(x)[1], 4, 8))` come out as
 * [batch, sequence, 4, 8].
 */
export interface KnownData {
  readonly shape: readonly number[];
  readonly values: readonly Dim[];
}

/** Larger tensors are not tracked: shape arithmetic works on short vectors and scalars. */
export const MAX_KNOWN_ELEMENTS = 64;

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

/** Builds known data, or undefined when the tensor is too large to track. */
export function makeData(shape: readonly number[], values: readonly Dim[]): KnownData | undefined {
  if (values.length > MAX_KNOWN_ELEMENTS || values.length !== elementCount(shape)) return undefined;
  return { shape: [...shape], values: [...values] };
}

export function scalarData(value: Dim): KnownData {
  return { shape: [], values: [value] };
}

export function vectorData(values: readonly Dim[]): KnownData | undefined {
  return makeData([values.length], values);
}

const TRACKED_TYPES = new Set<DataType>([
  DataType.INT64,
  DataType.INT32,
  DataType.INT16,
  DataType.INT8,
  DataType.UINT8,
  DataType.UINT16,
  DataType.UINT32,
  DataType.UINT64,
  DataType.BOOL,
  DataType.FLOAT,
  DataType.FLOAT16,
  DataType.DOUBLE,
  DataType.BFLOAT16,
]);

/** Reads a small constant tensor; external data is never read here. */
export function dataFromTensor(tensor: Tensor): KnownData | undefined {
  if (tensor.isExternal || !TRACKED_TYPES.has(tensor.dtype) || tensor.size > MAX_KNOWN_ELEMENTS) return undefined;
  return makeData(tensor.dims, tensor.numbers());
}

/** Returns the values when every one is a number. */
export function numericValues(data: KnownData | undefined): number[] | undefined {
  if (!data || !data.values.every((value) => typeof value === "number")) return undefined;
  return data.values as number[];
}

/**
 * Applies an elementwise function with numpy broadcasting over known data;
 * undefined when an operand is missing or the result is too large.
 */
export function mapBroadcast(operands: readonly (KnownData | undefined)[], apply: (values: Dim[]) => Dim): KnownData | undefined {
  if (operands.some((operand) => operand === undefined)) return undefined;
  const inputs = operands as KnownData[];
  const rank = Math.max(...inputs.map((input) => input.shape.length));
  const shape: number[] = [];
  for (let axis = 0; axis < rank; axis++) {
    const sizes = inputs.map((input) => input.shape[input.shape.length - rank + axis] ?? 1);
    const size = Math.max(...sizes);
    if (sizes.some((each) => each !== 1 && each !== size)) return undefined;
    shape.push(sizes.includes(0) ? 0 : size);
  }
  const count = elementCount(shape);
  if (count > MAX_KNOWN_ELEMENTS) return undefined;
  const values: Dim[] = [];
  for (let flat = 0; flat < count; flat++) {
    values.push(apply(inputs.map((input) => input.values[broadcastIndex(flat, shape, input.shape)])));
  }
  return { shape, values };
}

/** Maps a flat index of the broadcast result to the flat index of one operand. */
function broadcastIndex(flat: number, shape: readonly number[], operandShape: readonly number[]): number {
  let index = 0;
  let stride = 1;
  let rest = flat;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const coordinate = rest % shape[axis];
    rest = Math.floor(rest / shape[axis]);
    const operandAxis = axis - (shape.length - operandShape.length);
    if (operandAxis < 0) continue;
    const size = operandShape[operandAxis];
    if (size !== 1) index += coordinate * stride;
    stride *= size;
  }
  return index;
}
