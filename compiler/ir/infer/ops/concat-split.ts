import { Dim, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { addDims, divideDims } from "../dims";
import { makeData } from "../known-data";
import { RuleDefinition } from "../registry";
import { commonElemType, intsFromInput } from "./common";

/**
 * Concat joins inputs along one axis, where the sizes add up: that is how
 * `past_sequence+sequence` appears for KV caches. Split cuts one axis into
 * the outputs, with sizes from an attribute (before opset 13), an input
 * (from 13) or the num_outputs attribute (from 18).
 */

/**
 * Merges the sizes all inputs must share on a non-concatenated axis. Concat
 * does not broadcast, so different names there are equal at run time and
 * any one of them is exact. A number is preferred.
 */
function sharedDim(ctx: InferenceContext, dims: readonly Dim[], axis: number): Dim {
  const numbers = [...new Set(dims.filter((dim): dim is number => typeof dim === "number"))];
  if (numbers.length > 1) ctx.fail(`inputs have different sizes ${numbers.join(" and ")} on axis ${axis}`);
  if (numbers.length === 1) return numbers[0];
  return dims.find((dim) => dim !== null) ?? null;
}

function concatRule(ctx: InferenceContext): void {
  const indices = ctx.node.inputs.map((_, i) => i).filter((i) => ctx.hasInput(i));
  if (indices.length === 0) ctx.fail("has no inputs", "Give Concat at least one input.");
  const elemType = commonElemType(ctx, indices);
  const shapes = indices.map((i) => ctx.shape(i));
  if (shapes.some((shape) => !shape)) {
    const known = shapes.find((shape) => shape);
    ctx.setOutput(0, elemType, known?.map(() => null));
    return;
  }
  const ranks = new Set(shapes.map((shape) => shape!.length));
  if (ranks.size > 1) ctx.fail(`inputs have different ranks: ${shapes.map((shape) => formatShape(shape)).join(", ")}`);
  const rank = shapes[0]!.length;
  const axis = ctx.axis(ctx.int("axis", 1), rank);
  const shape = Array.from({ length: rank }, (_, i) => {
    const column = shapes.map((each) => each![i]);
    return i === axis ? column.reduce<Dim>((sum, dim) => addDims(sum, dim), 0) : sharedDim(ctx, column, i);
  });
  const datas = indices.map((i) => ctx.data(i));
  const data = rank === 1 && datas.every((each) => each) ? makeData([datas.reduce((n, each) => n + each!.values.length, 0)], datas.flatMap((each) => each!.values)) : undefined;
  ctx.setOutput(0, elemType, shape, data);
}

/** Splits `size` into `count` parts: equal parts, the last smaller when it does not divide (opset 18 rule). */
function evenSplit(ctx: InferenceContext, size: Dim, count: number): Dim[] {
  if (typeof size !== "number") return new Array<Dim>(count).fill(divideDims(size, count));
  const chunk = Math.ceil(size / count);
  if (chunk * count !== size && ctx.opset < 18) ctx.fail(`axis size ${size} does not split evenly into ${count} outputs`);
  return Array.from({ length: count }, (_, i) => Math.max(0, Math.min(chunk, size - chunk * i)));
}

type SplitReader = (ctx: InferenceContext) => number[] | undefined | "unknown";

function split(readSizes: SplitReader) {
  return (ctx: InferenceContext): void => {
    const input = ctx.input(0);
    const count = ctx.outputCount;
    const sizes = readSizes(ctx);
    if (!input.shape || sizes === "unknown") {
      for (let i = 0; i < count; i++) ctx.setOutput(i, input.elemType, input.shape?.map(() => null));
      return;
    }
    const axis = ctx.axis(ctx.int("axis", 0), input.shape.length);
    const size = input.shape[axis];
    if (sizes && sizes.length !== count) ctx.fail(`split has ${sizes.length} sizes for ${count} outputs`);
    if (sizes?.some((part) => part < 0)) ctx.fail(`split sizes [${sizes.join(", ")}] contain a negative size`);
    if (sizes && typeof size === "number" && sizes.reduce((a, b) => a + b, 0) !== size) {
      ctx.fail(`split sizes [${sizes.join(", ")}] do not add up to the axis size ${size}`);
    }
    const parts: Dim[] = sizes ?? evenSplit(ctx, size, count);
    const data = ctx.data(0);
    let offset = 0;
    parts.forEach((part, i) => {
      const shape = [...input.shape!];
      shape[axis] = part;
      const values = data && data.shape.length === 1 && typeof part === "number" ? data.values.slice(offset, offset + part) : undefined;
      ctx.setOutput(i, input.elemType, shape, values && makeData([part as number], values));
      offset += typeof part === "number" ? part : 0;
    });
  };
}

/** Split-1 may take sizes as input 1; Split-2 to 12 as the `split` attribute. */
const splitSizesBefore13: SplitReader = (ctx) => ctx.ints("split") ?? (ctx.hasInput(1) ? (intsFromInput(ctx, 1) ?? "unknown") : undefined);

/** From opset 13 the sizes are input 1; from 18 num_outputs may replace it (the even split handles that). */
const splitSizesFromInput: SplitReader = (ctx) => (ctx.hasInput(1) ? (intsFromInput(ctx, 1) ?? "unknown") : undefined);

/** From opset 18, num_outputs must agree with the number of outputs when it is given. */
function splitFrom18(ctx: InferenceContext): void {
  const numOutputs = ctx.int("num_outputs");
  if (numOutputs !== undefined && numOutputs !== ctx.outputCount) {
    ctx.fail(`num_outputs is ${numOutputs} but the node has ${ctx.outputCount} outputs`);
  }
  split(splitSizesFromInput)(ctx);
}

export const concatSplitRules: RuleDefinition[] = [
  { opType: "Concat", since: 1, infer: concatRule },
  { opType: "Split", since: 1, infer: split(splitSizesBefore13) },
  { opType: "Split", since: 13, infer: split(splitSizesFromInput) },
  { opType: "Split", since: 18, infer: splitFrom18 },
];
