import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { broadcastShapes } from "../dims";
import { KnownData, numericValues } from "../known-data";
import { RuleDefinition, ShapeRule } from "../registry";

/** An operator type and the opset version of its domain that introduced it. */
export type FirstVersion = readonly [opType: string, since: number];

/** Registers one rule under several op types of one domain, each from the version that introduced it. */
export function rulesFor(operators: readonly FirstVersion[], infer: ShapeRule, domain?: string): RuleDefinition[] {
  return operators.map(([opType, since]) => ({ opType, since, infer, domain }));
}

/** Output 0 gets the element type and shape of input 0. */
export function sameAsFirstInput(ctx: InferenceContext): void {
  const input = ctx.input(0);
  ctx.setOutput(0, input.elemType, input.shape);
}

/**
 * Broadcasts the shapes of the given inputs (numpy rules). Returns
 * undefined when some rank is unknown and fails on incompatible sizes.
 */
export function broadcastInputs(ctx: InferenceContext, indices: readonly number[]): Dim[] | undefined {
  const shapes = indices.map((index) => ctx.shape(index));
  if (shapes.some((shape) => shape === undefined)) return undefined;
  const result = broadcastShapes(shapes as Dim[][]);
  if (typeof result === "string") ctx.fail(result);
  return result;
}

/** Fails unless the listed inputs share one element type; returns it. */
export function commonElemType(ctx: InferenceContext, indices: readonly number[]): number {
  const first = ctx.elemType(indices[0]);
  for (const index of indices.slice(1)) {
    if (ctx.elemType(index) !== first) ctx.fail(`inputs ${indices[0]} and ${index} have different element types`);
  }
  return first;
}

/** Returns the element count of a 1-D (or scalar) input from its declared shape, or undefined when it is unknown or invalid. */
function lengthFromShape(ctx: InferenceContext, index: number): number | undefined {
  const shape = ctx.shape(index);
  if (shape && shape.length === 0) return 1;
  const length = shape?.length === 1 ? shape[0] : undefined;
  return typeof length === "number" && Number.isInteger(length) && length >= 0 ? length : undefined;
}

/**
 * Reads a 1-D integer input as a list of dimensions: the known values, or
 * else as many unknowns as its numeric length. Returns undefined when even
 * the length is unknown. Fails when a known value is not an integer.
 */
export function dimsFromInput(ctx: InferenceContext, index: number): Dim[] | undefined {
  const data = ctx.data(index);
  if (data) {
    if (data.shape.length > 1) ctx.fail(`input ${index} ("${ctx.inputName(index)}") must be a 1-D tensor`);
    checkIntegers(ctx, index, data.values, -Infinity);
    return [...data.values];
  }
  const length = lengthFromShape(ctx, index);
  return length === undefined ? undefined : new Array<Dim>(length).fill(null);
}

/** Reads a 1-D input of sizes (a target shape, repeats, split sizes) and fails on a negative or fractional value. */
export function sizesFromInput(ctx: InferenceContext, index: number): Dim[] | undefined {
  const sizes = dimsFromInput(ctx, index);
  if (sizes) checkIntegers(ctx, index, sizes, 0);
  return sizes;
}

/** Reads an integer input whose values must all be known numbers (axes, pads); undefined otherwise. */
export function intsFromInput(ctx: InferenceContext, index: number): number[] | undefined {
  const values = numericValues(ctx.data(index));
  if (values) checkIntegers(ctx, index, values, -Infinity);
  return values;
}

/**
 * Reads an axes input (Squeeze and Unsqueeze from opset 13, the
 * reductions): undefined when the input is not given, the axes when they
 * are known, [] when the input is known to be empty, and "unknown" otherwise.
 */
export function axesFromInput(ctx: InferenceContext, index: number): number[] | undefined | "unknown" {
  if (!ctx.hasInput(index)) return undefined;
  const axes = intsFromInput(ctx, index);
  if (axes) return axes;
  return lengthFromShape(ctx, index) === 0 ? [] : "unknown";
}

/**
 * Fails unless every known number of input `index` is an integer of at
 * least `minimum`: shapes, repeats and indices computed at run time can be
 * negative, fractional, NaN or infinite in a broken graph.
 */
export function checkIntegers(ctx: InferenceContext, index: number, values: readonly Dim[], minimum: number): void {
  const invalid = values.find((value) => typeof value === "number" && !(Number.isInteger(value) && value >= minimum));
  if (invalid === undefined) return;
  let expected = `integers of ${minimum} or more`;
  if (minimum === 0) expected = "non-negative integers";
  if (minimum === -Infinity) expected = "integers";
  ctx.fail(`input ${index} ("${ctx.inputName(index)}") has the value ${invalid} in [${values.join(", ")}], expected ${expected}`);
}

/** Reads a scalar or one-element input as a single value. */
export function scalarFromInput(ctx: InferenceContext, index: number): Dim | undefined {
  const data: KnownData | undefined = ctx.data(index);
  if (!data || data.values.length !== 1) return undefined;
  return data.values[0];
}

/** Reads a scalar or one-element input that is a size (a sequence length, a beam count), and fails on a negative or fractional value. */
export function sizeFromInput(ctx: InferenceContext, index: number): Dim | undefined {
  const size = scalarFromInput(ctx, index);
  if (size !== undefined) checkIntegers(ctx, index, [size], 0);
  return size;
}

/** Normalizes a list of axes and fails on duplicates or out-of-range values. */
export function normalizeAxes(ctx: InferenceContext, axes: readonly number[], rank: number): number[] {
  const normalized = axes.map((axis) => ctx.axis(axis, rank));
  if (new Set(normalized).size !== normalized.length) ctx.fail(`axes [${axes.join(", ")}] contain a duplicate`);
  return normalized;
}
