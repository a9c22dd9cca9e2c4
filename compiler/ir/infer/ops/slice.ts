import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { UNBOUNDED, addDims, ceilDivideDims, compareDims, dimPolynomial, maxDims, minDims, subtractDims } from "../dims";
import { KnownData, makeData } from "../known-data";
import { RuleDefinition } from "../registry";
import { signOf } from "../polynomial";
import { dimsFromInput, intsFromInput, normalizeAxes } from "./common";

/**
 * Slice: starts and ends are attributes before opset 10 and inputs (with
 * optional axes and steps) from 10. Symbolic bounds are common (`x[:, past:]`),
 * so the arithmetic runs on derived dimensions.
 */

/** Exporters write "to the end" as INT32_MAX or INT64_MAX (and the negatives for reverse slices). */
const TO_THE_END = UNBOUNDED;

function clampNumber(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), high);
}

/** Length of a slice when everything is a number, exactly as ONNX clamps. */
function numericSliceLength(size: number, start: number, end: number, step: number): number {
  if (start < 0) start += size;
  if (end < 0) end += size;
  if (step > 0) {
    start = clampNumber(start, 0, size);
    end = clampNumber(end, 0, size);
  } else {
    start = clampNumber(start, 0, size - 1);
    end = clampNumber(end, -1, size - 1);
  }
  return Math.max(0, Math.ceil((end - start) / step));
}

/**
 * Length of a slice with constant bounds on an axis whose size is a name,
 * clamped as onnxruntime clamps: an index i >= 0 stands for min(i, size) and
 * a negative one for max(0, size + i). So x[0:1000] has min(1000,seq)
 * elements, x[-4:] has min(4,seq) and x[3:] has max(0,seq-3).
 */
function constantBoundsLength(size: Dim, start: number, end: number, step: number): Dim {
  if (start >= TO_THE_END || end <= -TO_THE_END) return 0;
  if (start <= -TO_THE_END) start = 0;
  const toTheEnd = end >= TO_THE_END;
  const sameSide = start >= 0 === end >= 0;
  if (!toTheEnd && sameSide && end <= start) return 0;
  if (size === null) return null;
  let span: Dim;
  if (start >= 0 && toTheEnd) span = maxDims(0, subtractDims(size, start));
  else if (start < 0 && toTheEnd) span = minDims(-start, size);
  else if (start >= 0 && end < 0) span = maxDims(0, addDims(size, end - start));
  else if (start >= 0) span = minDims(end - start, maxDims(0, subtractDims(size, start)));
  else if (end < 0) span = minDims(end - start, maxDims(0, addDims(size, end)));
  else span = maxDims(0, subtractDims(minDims(end, size), maxDims(0, addDims(size, start))));
  return step === 1 ? span : ceilDivideDims(span, step);
}

/**
 * Clamps a slice index into [0, size], counting a negative index from the
 * end. A constant index is clamped exactly. Returns undefined when the sign
 * of a symbolic index is unknown.
 * NOTE: a symbolic index (`past` in `x[:, past:]`) is assumed to lie in
 * [0, size] where the order of the two cannot be decided. A valid model
 * needs that for its shapes to line up, but an out-of-range index would
 * give a wrong size here.
 */
function clampIndex(index: Dim, size: Dim): Dim | undefined {
  if (index === null) return null;
  if (typeof index === "number") {
    if (index >= TO_THE_END) return size;
    if (index <= -TO_THE_END) return 0;
    return index >= 0 ? minDims(index, size) : maxDims(0, addDims(size, index));
  }
  const sign = signOf(dimPolynomial(index)!);
  if (sign === 0) return undefined;
  const position = sign > 0 ? index : addDims(index, size);
  const aboveSize = compareDims(position, size);
  if (aboveSize === "greater" || aboveSize === "greater-or-equal") return size;
  const belowZero = compareDims(position, 0);
  if (belowZero === "less" || belowZero === "less-or-equal") return 0;
  return position;
}

/** Returns the length of a slice along one axis. It is never negative, and null where it cannot be determined. */
function sliceLength(size: Dim, start: Dim, end: Dim, step: number): Dim {
  if (typeof size === "number" && typeof start === "number" && typeof end === "number") return numericSliceLength(size, start, end, step);
  if (step <= 0) return null;
  if (typeof start === "number" && typeof end === "number") return constantBoundsLength(size, start, end, step);
  const first = clampIndex(start, size);
  const last = clampIndex(end, size);
  if (first === undefined || last === undefined || first === null || last === null) return null;
  let span = subtractDims(last, first);
  const order = compareDims(span, 0);
  if (order === "less" || order === "less-or-equal") return 0;
  if (order === "unknown") span = maxDims(0, span);
  return step === 1 ? span : ceilDivideDims(span, step);
}

interface SliceSpec {
  starts: Dim[];
  ends: Dim[];
  axes: number[] | undefined;
  steps: number[];
}

function sliceData(data: KnownData | undefined, spec: SliceSpec): KnownData | undefined {
  if (!data || data.shape.length !== 1 || spec.starts.length !== 1) return undefined;
  const [start, end, step] = [spec.starts[0], spec.ends[0], spec.steps[0]];
  if (typeof start !== "number" || typeof end !== "number") return undefined;
  const size = data.shape[0];
  const length = numericSliceLength(size, start, end, step);
  let first = start < 0 ? start + size : start;
  first = step > 0 ? clampNumber(first, 0, size) : clampNumber(first, 0, size - 1);
  return makeData([length], Array.from({ length }, (_, i) => data.values[first + i * step]));
}

function applySlice(ctx: InferenceContext, spec: SliceSpec): void {
  const input = ctx.input(0);
  if (!input.shape) {
    ctx.setOutput(0, input.elemType, undefined);
    return;
  }
  const rank = input.shape.length;
  const count = spec.starts.length;
  if (spec.ends.length !== count) ctx.fail(`starts has ${count} values but ends has ${spec.ends.length}`);
  const axes = normalizeAxes(ctx, spec.axes ?? Array.from({ length: count }, (_, i) => i), rank);
  if (axes.length !== count) ctx.fail(`axes has ${axes.length} values but starts has ${count}`);
  const shape = [...input.shape];
  axes.forEach((axis, i) => {
    const step = spec.steps[i] ?? 1;
    if (step === 0) ctx.fail(`step for axis ${axis} is 0`);
    shape[axis] = sliceLength(input.shape![axis], spec.starts[i], spec.ends[i], step);
  });
  const data = axes.length === 1 && axes[0] === 0 ? sliceData(ctx.data(0), spec) : undefined;
  ctx.setOutput(0, input.elemType, shape, data);
}

/** Slice-1: starts, ends and axes are attributes. */
function sliceFromAttributes(ctx: InferenceContext): void {
  const starts = ctx.ints("starts");
  const ends = ctx.ints("ends");
  if (!starts || !ends) ctx.fail("needs the starts and ends attributes", "Add them to the node.");
  applySlice(ctx, { starts, ends, axes: ctx.ints("axes"), steps: starts.map(() => 1) });
}

/** Slice-10 and later: starts, ends, axes and steps are inputs. */
function sliceFromInputs(ctx: InferenceContext): void {
  const input = ctx.input(0);
  const starts = dimsFromInput(ctx, 1);
  const ends = dimsFromInput(ctx, 2);
  const axes = ctx.hasInput(3) ? intsFromInput(ctx, 3) : undefined;
  const steps = ctx.hasInput(4) ? intsFromInput(ctx, 4) : starts?.map(() => 1);
  const axesUnknown = ctx.hasInput(3) && !axes;
  if (!starts || !ends || !steps || axesUnknown) {
    ctx.setOutput(0, input.elemType, input.shape?.map(() => null));
    return;
  }
  applySlice(ctx, { starts, ends, axes, steps });
}

export const sliceRules: RuleDefinition[] = [
  { opType: "Slice", since: 1, infer: sliceFromAttributes },
  { opType: "Slice", since: 10, infer: sliceFromInputs },
];
