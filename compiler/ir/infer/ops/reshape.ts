import { Dim, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { divideDims, productOfDims } from "../dims";
import { KnownData, makeData } from "../known-data";
import { RuleDefinition } from "../registry";
import { axesFromInput, checkIntegers, dimsFromInput, normalizeAxes } from "./common";

/**
 * Operators that rearrange dimensions without touching values: Reshape,
 * Flatten, Squeeze, Unsqueeze and Transpose. Known values pass through
 * unchanged in row-major order.
 */

/** Re-shapes known values when the new shape is numeric. */
function reshapeData(data: KnownData | undefined, shape: readonly Dim[] | undefined): KnownData | undefined {
  if (!data || !shape || !shape.every((dim) => typeof dim === "number")) return undefined;
  return makeData(shape as number[], data.values);
}

/**
 * Resolves a Reshape target: 0 copies the input dimension (unless
 * allowzero), one -1 takes what is left of the element count.
 * NOTE: a symbolic target value that is 0 at run time is not copied here.
 * Exporters put a size there only when they read it from the same input
 * axis, so the copy would give the same size.
 */
function resolveReshape(ctx: InferenceContext, input: Dim[] | undefined, target: Dim[], allowZero: boolean): Dim[] {
  let inferAt = -1;
  const shape = target.map((dim, axis) => {
    if (dim === 0 && !allowZero) {
      if (input && axis >= input.length) ctx.fail(`shape value 0 at axis ${axis} copies an input axis that does not exist (input rank ${input.length})`);
      return input ? input[axis] : null;
    }
    if (dim === -1) {
      if (inferAt >= 0) ctx.fail(`shape [${target.join(", ")}] has more than one -1`);
      inferAt = axis;
      return null;
    }
    if (typeof dim === "number" && dim < -1) ctx.fail(`shape value ${dim} at axis ${axis} is invalid`);
    return dim;
  });
  if (inferAt >= 0 && input) {
    const others = shape.filter((_, axis) => axis !== inferAt);
    shape[inferAt] = divideDims(productOfDims(input), productOfDims(others));
  }
  return shape;
}

type TargetReader = (ctx: InferenceContext) => Dim[] | undefined;

/** Reads the target shape input of Reshape-5 and later, whose values are sizes, 0 (copy) or -1 (infer). */
function reshapeTargetFromInput(ctx: InferenceContext): Dim[] | undefined {
  const target = dimsFromInput(ctx, 1);
  if (target) checkIntegers(ctx, 1, target, -1);
  return target;
}

/** Reshape reads the target from the `shape` attribute before opset 5 and from input 1 after; allowzero exists from 14. */
function reshape(readTarget: TargetReader) {
  return (ctx: InferenceContext): void => {
    const input = ctx.input(0);
    const target = readTarget(ctx);
    if (!target) {
      ctx.setOutput(0, input.elemType, undefined);
      return;
    }
    const allowZero = ctx.opset >= 14 && ctx.int("allowzero", 0) !== 0;
    const shape = resolveReshape(ctx, input.shape, target, allowZero);
    ctx.setOutput(0, input.elemType, shape, reshapeData(ctx.data(0), shape));
  };
}

function flattenRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  if (!input.shape) {
    ctx.setOutput(0, input.elemType, [null, null]);
    return;
  }
  const rank = input.shape.length;
  const axis = ctx.int("axis", 1);
  // The axis may be rank itself (everything in the first factor), and a negative axis counts from rank.
  const split = axis < 0 ? axis + rank : axis;
  if (split < 0 || split > rank) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
  const shape = [productOfDims(input.shape.slice(0, split)), productOfDims(input.shape.slice(split))];
  ctx.setOutput(0, input.elemType, shape, reshapeData(ctx.data(0), shape));
}

/** Axes of Squeeze and Unsqueeze: undefined when not given, "unknown" when given but not known. */
type AxesReader = (ctx: InferenceContext) => number[] | undefined | "unknown";

/** Before opset 13 the axes are an attribute. */
const axesAttribute: AxesReader = (ctx) => ctx.ints("axes");

/** From opset 13 the axes are input 1. */
const axesInput: AxesReader = (ctx) => axesFromInput(ctx, 1);

/**
 * Squeeze: without axes, or with an empty list (which onnxruntime 1.31
 * treats the same), every size-1 axis goes. The rank is then unknown when a
 * dimension is not a number, since it may or may not be 1.
 */
const squeeze = (readAxes: AxesReader) => (ctx: InferenceContext): void => {
  const input = ctx.input(0);
  const axes = readAxes(ctx);
  if (!input.shape || axes === "unknown") {
    ctx.setOutput(0, input.elemType, undefined);
    return;
  }
  let shape: Dim[] | undefined;
  if (axes === undefined || axes.length === 0) {
    shape = input.shape.every((dim) => typeof dim === "number") ? input.shape.filter((dim) => dim !== 1) : undefined;
  } else {
    const removed = new Set(normalizeAxes(ctx, axes, input.shape.length));
    for (const axis of removed) {
      const dim = input.shape[axis];
      if (typeof dim === "number" && dim !== 1) ctx.fail(`cannot squeeze axis ${axis} of shape ${formatShape(input.shape)}: its size is ${dim}, not 1`);
    }
    shape = input.shape.filter((_, axis) => !removed.has(axis));
  }
  ctx.setOutput(0, input.elemType, shape, reshapeData(ctx.data(0), shape));
};

const unsqueeze = (readAxes: AxesReader) => (ctx: InferenceContext): void => {
  const input = ctx.input(0);
  const axes = readAxes(ctx);
  if (axes === undefined) ctx.fail("has no axes", "Give Unsqueeze its axes.");
  if (!input.shape || axes === "unknown") {
    ctx.setOutput(0, input.elemType, undefined);
    return;
  }
  const rank = input.shape.length + axes.length;
  const inserted = new Set(normalizeAxes(ctx, axes, rank));
  const shape: Dim[] = [];
  let next = 0;
  for (let axis = 0; axis < rank; axis++) shape.push(inserted.has(axis) ? 1 : input.shape[next++]);
  ctx.setOutput(0, input.elemType, shape, reshapeData(ctx.data(0), shape));
};

function transposeRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  if (!input.shape) {
    ctx.setOutput(0, input.elemType, undefined);
    return;
  }
  const rank = input.shape.length;
  const perm = ctx.ints("perm") ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  if (perm.length !== rank) ctx.fail(`perm [${perm.join(", ")}] has ${perm.length} entries for an input of rank ${rank}`);
  const axes = normalizeAxes(ctx, perm, rank);
  const data = rank <= 1 ? ctx.data(0) : undefined;
  ctx.setOutput(0, input.elemType, axes.map((axis) => input.shape![axis]), data);
}

export const reshapeRules: RuleDefinition[] = [
  { opType: "Reshape", since: 1, infer: reshape((ctx) => ctx.ints("shape")) },
  { opType: "Reshape", since: 5, infer: reshape(reshapeTargetFromInput) },
  { opType: "Flatten", since: 1, infer: flattenRule },
  { opType: "Squeeze", since: 1, infer: squeeze(axesAttribute) },
  { opType: "Squeeze", since: 13, infer: squeeze(axesInput) },
  { opType: "Unsqueeze", since: 1, infer: unsqueeze(axesAttribute) },
  { opType: "Unsqueeze", since: 13, infer: unsqueeze(axesInput) },
  { opType: "Transpose", since: 1, infer: transposeRule },
];
