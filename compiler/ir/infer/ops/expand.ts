import { Dim, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { addDims, broadcastShapes, multiplyDims } from "../dims";
import { MAX_KNOWN_ELEMENTS, mapBroadcast, makeData } from "../known-data";
import { RuleDefinition } from "../registry";
import { checkIntegers, intsFromInput, normalizeAxes, sizesFromInput } from "./common";

/** Operators that grow a tensor: Expand (broadcast to a shape), Tile and Pad. Resize is in resize.ts. */

function expandRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  const target = sizesFromInput(ctx, 1);
  if (!input.shape || !target) {
    ctx.setOutput(0, input.elemType, target?.map(() => null));
    return;
  }
  const shape = broadcastShapes([input.shape, target]);
  if (typeof shape === "string") ctx.fail(`cannot expand: ${shape}`);
  let data;
  if (shape.every((dim) => typeof dim === "number" && Number.isInteger(dim) && dim >= 0)) {
    const sizes = shape as number[];
    const count = sizes.reduce((product, dim) => product * dim, 1);
    const zeros = count <= MAX_KNOWN_ELEMENTS ? makeData(sizes, new Array<Dim>(count).fill(0)) : undefined;
    data = mapBroadcast([ctx.data(0), zeros], ([value]) => value);
  }
  ctx.setOutput(0, input.elemType, shape, data);
}

function tileRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  const repeats = sizesFromInput(ctx, 1);
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
    const size = shape[axis];
    if (typeof size === "number" && size < 0) ctx.fail(`pads [${pads.join(", ")}] remove more than the ${formatShape(input.shape!)} input has on axis ${axis}`);
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
  const pads = ctx.data(1)?.values;
  if (pads) checkIntegers(ctx, 1, pads, -Infinity);
  applyPads(ctx, pads, axes);
}

/** Tile-1 takes `tiles` and `axis` inputs instead of repeats, so the rule starts at Tile-6. */
export const expandRules: RuleDefinition[] = [
  { opType: "Expand", since: 8, infer: expandRule },
  { opType: "Tile", since: 6, infer: tileRule },
  { opType: "Pad", since: 1, infer: padFromAttribute },
  { opType: "Pad", since: 11, infer: padFromInputs },
];
