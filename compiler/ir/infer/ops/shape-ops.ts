import { DataType } from "../../../onnx/dtype";
import { int64ToNumber } from "../../../onnx/proto";
import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { ceilDivideDims, isKnownDim, maxDims, productOfDims, subtractDims } from "../dims";
import { KnownData, MAX_KNOWN_ELEMENTS, dataFromTensor, makeData, scalarData, vectorData } from "../known-data";
import { RuleDefinition } from "../registry";
import { scalarFromInput, sizesFromInput } from "./common";

/**
 * Operators that read or build shapes: Shape, Size, Constant,
 * ConstantOfShape and Range. Their outputs carry known values, the start of
 * every run-time shape computation.
 */

/** Shape (start and end attributes from opset 15): the input's dimensions as an int64 vector. */
function shapeRule(ctx: InferenceContext): void {
  const shape = ctx.shape(0);
  if (!shape) {
    ctx.setOutput(0, DataType.INT64, [null]);
    return;
  }
  const rank = shape.length;
  const clamp = (index: number): number => Math.min(Math.max(index < 0 ? index + rank : index, 0), rank);
  const start = clamp(ctx.int("start", 0));
  const end = clamp(ctx.int("end", rank));
  const dims = shape.slice(start, Math.max(start, end));
  ctx.setOutput(0, DataType.INT64, [dims.length], vectorData(dims));
}

function sizeRule(ctx: InferenceContext): void {
  const shape = ctx.shape(0);
  ctx.setOutput(0, DataType.INT64, [], shape ? scalarData(productOfDims(shape)) : undefined);
}

/** Constant: the type and values of whichever value attribute is set. */
function constantRule(ctx: InferenceContext): void {
  const tensor = ctx.tensor("value");
  if (tensor) {
    ctx.setOutput(0, tensor.dtype, [...tensor.dims], dataFromTensor(tensor));
    return;
  }
  const valueInt = ctx.int("value_int");
  if (valueInt !== undefined) return ctx.setOutput(0, DataType.INT64, [], scalarData(valueInt));
  const valueInts = ctx.ints("value_ints");
  if (valueInts) return ctx.setOutput(0, DataType.INT64, [valueInts.length], vectorData(valueInts));
  if (ctx.hasAttribute("value_float")) return ctx.setOutput(0, DataType.FLOAT, [], scalarData(ctx.float("value_float", 0)));
  const valueFloats = ctx.floats("value_floats");
  if (valueFloats) return ctx.setOutput(0, DataType.FLOAT, [valueFloats.length], vectorData(valueFloats));
  if (ctx.hasAttribute("value_string")) return ctx.setOutput(0, DataType.STRING, []);
  const valueStrings = ctx.strings("value_strings");
  if (valueStrings) return ctx.setOutput(0, DataType.STRING, [valueStrings.length]);
  const sparse = ctx.sparseTensor("sparse_value");
  if (sparse) return ctx.setOutput(0, (sparse.values?.dataType ?? DataType.UNDEFINED) as DataType, (sparse.dims ?? []).map((dim) => int64ToNumber(dim, "sparse_value dimension")));
  ctx.fail("has none of the value attributes (value, sparse_value, value_int(s), value_float(s), value_string(s))", "Give the Constant a value.");
}

/** ConstantOfShape: the shape comes from the input's values, the element type from the `value` attribute (default float 0). */
function constantOfShapeRule(ctx: InferenceContext): void {
  const fill = ctx.tensor("value");
  const elemType = fill?.dtype ?? DataType.FLOAT;
  const shape = sizesFromInput(ctx, 0);
  let data: KnownData | undefined;
  if (shape && shape.every((dim) => typeof dim === "number")) {
    const value = fill ? (dataFromTensor(fill)?.values[0] ?? null) : 0;
    const sizes = shape as number[];
    const count = sizes.reduce((product, dim) => product * dim, 1);
    data = count <= MAX_KNOWN_ELEMENTS ? makeData(sizes, new Array<Dim>(count).fill(value)) : undefined;
  }
  ctx.setOutput(0, elemType, shape, data);
}

/**
 * Range: a 1-D tensor of max(ceil((limit - start) / delta), 0) elements,
 * counted in double precision as onnxruntime 1.31 does. A zero delta, or a
 * NaN or infinite count, fails as it does in onnxruntime.
 */
function rangeRule(ctx: InferenceContext): void {
  const elemType = ctx.elemType(0);
  const start = scalarFromInput(ctx, 0) ?? null;
  const limit = scalarFromInput(ctx, 1) ?? null;
  const delta = scalarFromInput(ctx, 2) ?? null;
  if (delta === 0) ctx.fail("delta is 0");
  let count: Dim = null;
  if (typeof start === "number" && typeof limit === "number" && typeof delta === "number") {
    count = Math.max(Math.ceil((limit - start) / delta), 0);
    if (!Number.isFinite(count)) ctx.fail(`start ${start}, limit ${limit} and delta ${delta} give a count that is not a finite number`);
  } else if (isKnownDim(start) && isKnownDim(limit) && typeof delta === "number" && Number.isInteger(delta) && delta > 0) {
    count = maxDims(ceilDivideDims(subtractDims(limit, start), delta), 0);
  }
  let data: KnownData | undefined;
  if (typeof count === "number" && typeof start === "number" && typeof delta === "number" && count <= MAX_KNOWN_ELEMENTS) {
    data = vectorData(rangeValues(start, delta, count, elemType));
  }
  ctx.setOutput(0, elemType, [count], data);
}

/** Lists the values of a Range: onnxruntime adds delta step by step in the element type, which rounds for float. */
function rangeValues(start: number, delta: number, count: number, elemType: DataType): number[] {
  const round = elemType === DataType.FLOAT ? Math.fround : (value: number) => value;
  const values: number[] = [];
  let value = start;
  for (let i = 0; i < count; i++) {
    values.push(value);
    value = round(value + delta);
  }
  return values;
}

export const shapeOpRules: RuleDefinition[] = [
  { opType: "Shape", since: 1, infer: shapeRule },
  { opType: "Size", since: 1, infer: sizeRule },
  { opType: "Constant", since: 1, infer: constantRule },
  { opType: "ConstantOfShape", since: 9, infer: constantOfShapeRule },
  { opType: "Range", since: 11, infer: rangeRule },
];
