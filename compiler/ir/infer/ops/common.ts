import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { broadcastShapes } from "../dims";
import { KnownData, numericValues } from "../known-data";
import { RuleDefinition, ShapeRule } from "../registry";

/** Registers one rule under several op types (and one domain and opset). */
export function rulesFor(opTypes: readonly string[], infer: ShapeRule, options: { domain?: string; since?: number } = {}): RuleDefinition[] {
  return opTypes.map((opType) => ({ opType, infer, ...options }));
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

/**
 * Reads a 1-D integer input as a list of dimensions: the known values, or
 * else as many unknowns as its numeric length. Returns undefined when even
 * the length is unknown.
 */
export function dimsFromInput(ctx: InferenceContext, index: number): Dim[] | undefined {
  const data = ctx.data(index);
  if (data) {
    if (data.shape.length > 1) ctx.fail(`input ${index} ("${ctx.inputName(index)}") must be a 1-D tensor`);
    return [...data.values];
  }
  const shape = ctx.shape(index);
  if (shape && shape.length === 1 && typeof shape[0] === "number") return new Array<Dim>(shape[0]).fill(null);
  if (shape && shape.length === 0) return [null];
  return undefined;
}

/** Reads an integer input whose values must all be known numbers (axes, pads); undefined otherwise. */
export function intsFromInput(ctx: InferenceContext, index: number): number[] | undefined {
  return numericValues(ctx.data(index));
}

/** Reads a scalar or one-element input as a single value. */
export function scalarFromInput(ctx: InferenceContext, index: number): Dim | undefined {
  const data: KnownData | undefined = ctx.data(index);
  if (!data || data.values.length !== 1) return undefined;
  return data.values[0];
}

/** Normalizes a list of axes and fails on duplicates or out-of-range values. */
export function normalizeAxes(ctx: InferenceContext, axes: readonly number[], rank: number): number[] {
  const normalized = axes.map((axis) => ctx.axis(axis, rank));
  if (new Set(normalized).size !== normalized.length) ctx.fail(`axes [${axes.join(", ")}] contain a duplicate`);
  return normalized;
}
