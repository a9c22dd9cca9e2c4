import { Dim, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { addDims, broadcastShapes, multiplyDims } from "../dims";
import { mapBroadcast, makeData, numericValues } from "../known-data";
import { RuleDefinition } from "../registry";
import { dimsFromInput, intsFromInput, normalizeAxes } from "./common";

/** Operators that grow a tensor: Expand (broadcast to a shape), Tile, Pad and Resize. */

function expandRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  const target = dimsFromInput(ctx, 1);
  if (!input.shape || !target) {
    ctx.setOutput(0, input.elemType, target?.map(() => null));
    return;
  }
  const shape = broadcastShapes([input.shape, target]);
  if (typeof shape === "string") ctx.fail(`cannot expand: ${shape}`);
  let data;
  if (shape.every((dim) => typeof dim === "number")) {
    const sizes = shape as number[];
    const count = sizes.reduce((product, dim) => product * dim, 1);
    const zeros = count <= 64 ? makeData(sizes, new Array<Dim>(count).fill(0)) : undefined;
    data = mapBroadcast([ctx.data(0), zeros], ([value]) => value);
  }
  ctx.setOutput(0, input.elemType, shape, data);
}

function tileRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  const repeats = dimsFromInput(ctx, 1);
  if (!input.shape) {
    ctx.setOutput(0, input.elemType, repeats?.map(() => null));
    return;
  }
  if (repeats && repeats.length !== input.shape.length) {
    ctx.fail(`repeats has ${repeats.length} values for an input of rank ${input.shape.length}`);
  }
  ctx.setOutput(0, input.elemType, input.shape.map((dim, axis) => multiplyDims(dim, repeats?.[axis] ?? null)));
}

/** Pad: `pads` lists all begin values, then all end values, for every axis (or for `axes`, opset 18). */
function applyPads(ctx: InferenceContext, pads: readonly Dim[] | undefined, axes: number[] | undefined): void {
  const input = ctx.input(0);
  if (!input.shape || !pads) {
    ctx.setOutput(0, input.elemType, input.shape?.map(() => null));
    return;
  }
  const rank = input.shape.length;
  const padded = axes ? normalizeAxes(ctx, axes, rank) : Array.from({ length: rank }, (_, i) => i);
  if (pads.length !== 2 * padded.length) ctx.fail(`pads has ${pads.length} values, expected ${2 * padded.length} for shape ${formatShape(input.shape)}`);
  const shape = [...input.shape];
  padded.forEach((axis, i) => {
    shape[axis] = addDims(addDims(shape[axis], pads[i]), pads[i + padded.length]);
  });
  ctx.setOutput(0, input.elemType, shape);
}

const padFromAttribute = (ctx: InferenceContext): void => applyPads(ctx, ctx.ints("pads") ?? ctx.ints("paddings"), undefined);

function padFromInputs(ctx: InferenceContext): void {
  const axes = ctx.hasInput(3) ? intsFromInput(ctx, 3) : undefined;
  if (ctx.hasInput(3) && !axes) {
    ctx.setOutput(0, ctx.elemType(0), ctx.shape(0)?.map(() => null));
    return;
  }
  applyPads(ctx, ctx.data(1)?.values, axes);
}

/**
 * Resize: output sizes from `sizes` when known, else floor(size * scale).
 * Before opset 11 the scales are input 1. From 11 the inputs are X, roi, scales, sizes.
 */
function resize(scalesIndex: number, sizesIndex: number | undefined) {
  return (ctx: InferenceContext): void => {
    const input = ctx.input(0);
    if (!input.shape) {
      ctx.setOutput(0, input.elemType, undefined);
      return;
    }
    const rank = input.shape.length;
    const axes = normalizeAxes(ctx, ctx.ints("axes") ?? Array.from({ length: rank }, (_, i) => i), rank);
    const sizes = sizesIndex !== undefined && ctx.hasInput(sizesIndex) ? ctx.data(sizesIndex)?.values : undefined;
    const scales = ctx.hasInput(scalesIndex) ? numericValues(ctx.data(scalesIndex)) : undefined;
    const shape: Dim[] = [...input.shape];
    axes.forEach((axis, i) => {
      const dim = input.shape![axis];
      if (sizes) shape[axis] = sizes[i] ?? null;
      else if (scales && typeof dim === "number") shape[axis] = Math.floor(dim * scales[i]);
      else if (scales && scales[i] === 1) shape[axis] = dim;
      else shape[axis] = null;
    });
    ctx.setOutput(0, input.elemType, shape);
  };
}

export const expandRules: RuleDefinition[] = [
  { opType: "Expand", since: 8, infer: expandRule },
  { opType: "Tile", since: 6, infer: tileRule },
  { opType: "Pad", infer: padFromAttribute },
  { opType: "Pad", since: 11, infer: padFromInputs },
  { opType: "Resize", since: 10, infer: resize(1, undefined) },
  { opType: "Resize", since: 11, infer: resize(2, 3) },
  { opType: "Upsample", since: 9, infer: resize(1, undefined) },
];
