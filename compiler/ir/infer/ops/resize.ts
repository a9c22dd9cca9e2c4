import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { RuleDefinition } from "../registry";
import { checkIntegers, normalizeAxes } from "./common";

/**
 * Resize (opset 10 on) and Upsample (opset 9). Output sizes come from the
 * `sizes` input when it is given, else from the scales. The arithmetic
 * follows onnxruntime 1.31, which computes in float32: an axis of size d
 * with scale s gets trunc(float(d) * s) elements, and keep_aspect_ratio_policy
 * (opset 18) rounds float(d) * scale to the nearest integer.
 */

/** The content of a scales or sizes input: not given, known values, or values known only at run time. */
type ResizeInput<T> = { kind: "absent" } | { kind: "known"; values: T[] } | { kind: "unknown" };

/** Reads an optional 1-D input. A tensor with no elements counts as not given, as the operator defines it. */
function readResizeInput(ctx: InferenceContext, index: number | undefined): ResizeInput<Dim> {
  if (index === undefined || !ctx.hasInput(index)) return { kind: "absent" };
  const data = ctx.data(index);
  if (data) return data.values.length === 0 ? { kind: "absent" } : { kind: "known", values: [...data.values] };
  const shape = ctx.shape(index);
  return shape?.length === 1 && shape[0] === 0 ? { kind: "absent" } : { kind: "unknown" };
}

function readScales(ctx: InferenceContext, index: number): ResizeInput<number> {
  const scales = readResizeInput(ctx, index);
  if (scales.kind !== "known") return scales;
  if (!scales.values.every((scale) => typeof scale === "number")) return { kind: "unknown" };
  const values = scales.values as number[];
  const invalid = values.find((scale) => !(Number.isFinite(scale) && scale > 0));
  if (invalid !== undefined) ctx.fail(`scales [${values.join(", ")}] contain ${invalid}, expected positive finite numbers`);
  return { kind: "known", values };
}

/** Number of elements onnxruntime gives an axis of `size` elements scaled by `scale`. */
function scaledSize(size: Dim, scale: number): Dim {
  if (typeof size === "number") return Math.trunc(Math.fround(Math.fround(size) * Math.fround(scale)));
  return scale === 1 ? size : null;
}

/**
 * Applies keep_aspect_ratio_policy: one scale for all resized axes, the
 * smallest (not_larger) or largest (not_smaller) of sizes[i] / input[i].
 * Returns the sizes unchanged for "stretch", and unknowns when a size or
 * an input dimension is not a positive number.
 */
function keepAspectRatio(ctx: InferenceContext, input: readonly Dim[], axes: readonly number[], sizes: readonly Dim[]): Dim[] {
  const policy = ctx.opset >= 18 ? ctx.string("keep_aspect_ratio_policy", "stretch") : "stretch";
  if (policy === "stretch") return [...sizes];
  if (policy !== "not_larger" && policy !== "not_smaller") {
    ctx.fail(`keep_aspect_ratio_policy is "${policy}", expected "stretch", "not_larger" or "not_smaller"`, "Fix the attribute in the model.");
  }
  const dims = axes.map((axis) => input[axis]);
  const known = (dim: Dim): dim is number => typeof dim === "number" && dim > 0;
  if (!dims.every(known) || !sizes.every(known)) return sizes.map(() => null);
  const ratios = sizes.map((size, i) => Math.fround(Math.fround(size) / Math.fround(dims[i])));
  const scale = policy === "not_larger" ? Math.min(...ratios) : Math.max(...ratios);
  return dims.map((dim) => Math.round(Math.fround(scale * Math.fround(dim))));
}

/** Lists the resized output sizes, one per axis in `axes`, and fails when both or neither of scales and sizes are given. */
function resizedSizes(ctx: InferenceContext, input: readonly Dim[], axes: readonly number[], scalesIndex: number, sizesIndex: number | undefined): Dim[] {
  const scales = readScales(ctx, scalesIndex);
  const sizes = readResizeInput(ctx, sizesIndex);
  if (scales.kind !== "absent" && sizes.kind !== "absent") ctx.fail("both scales and sizes are given, but only one of them may be", "Remove one of the two inputs.");
  if (scales.kind === "absent" && sizes.kind === "absent") ctx.fail("neither scales nor sizes is given", "Give the node one of them.");
  if (scales.kind === "unknown" || sizes.kind === "unknown") return axes.map(() => null);
  if (scales.kind === "known") {
    if (scales.values.length !== axes.length) ctx.fail(`scales has ${scales.values.length} values for ${axes.length} resized axes`);
    return axes.map((axis, i) => scaledSize(input[axis], scales.values[i]));
  }
  const known = sizes.kind === "known" ? sizes.values : [];
  if (known.length !== axes.length) ctx.fail(`sizes has ${known.length} values for ${axes.length} resized axes`);
  checkIntegers(ctx, sizesIndex!, known, 0);
  return keepAspectRatio(ctx, input, axes, known);
}

/** Builds the rule for one input layout: scales at input 1 before opset 11, then X, roi, scales, sizes. */
function resize(scalesIndex: number, sizesIndex: number | undefined) {
  return (ctx: InferenceContext): void => {
    const input = ctx.input(0);
    if (!input.shape) {
      ctx.setOutput(0, input.elemType, undefined);
      return;
    }
    const rank = input.shape.length;
    const axes = normalizeAxes(ctx, (ctx.opset >= 18 ? ctx.ints("axes") : undefined) ?? Array.from({ length: rank }, (_, i) => i), rank);
    const sizes = resizedSizes(ctx, input.shape, axes, scalesIndex, sizesIndex);
    const shape = [...input.shape];
    axes.forEach((axis, i) => (shape[axis] = sizes[i]));
    ctx.setOutput(0, input.elemType, shape);
  };
}

export const resizeRules: RuleDefinition[] = [
  { opType: "Resize", since: 10, infer: resize(1, undefined) },
  { opType: "Resize", since: 11, infer: resize(2, 3) },
  // Upsample-7 reads its scales from an attribute, which this rule does not.
  { opType: "Upsample", since: 9, infer: resize(1, undefined) },
];
