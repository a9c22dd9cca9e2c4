import { DataType } from "../../../onnx/dtype";
import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { addDims, maxDims, minDims, multiplyDims } from "../dims";
import { KnownData, makeData } from "../known-data";
import { RuleDefinition } from "../registry";
import { axesFromInput, normalizeAxes, scalarFromInput } from "./common";

/**
 * Reductions (axes as an attribute, or as input 1 from opset 13 for
 * ReduceSum and 18 for the others), ArgMax/ArgMin and TopK. ReduceProd of a
 * shape slice is how keras2onnx flattens leading axes, so reductions of
 * known 1-D values are carried.
 */

type AxesReader = (ctx: InferenceContext) => number[] | undefined | "unknown";

const axesAttribute: AxesReader = (ctx) => ctx.ints("axes");
const axesInput: AxesReader = (ctx) => axesFromInput(ctx, 1);

type Fold = (a: Dim, b: Dim) => Dim;

const FOLDS: Record<string, Fold | undefined> = {
  ReduceSum: addDims,
  ReduceProd: multiplyDims,
  ReduceMax: maxDims,
  ReduceMin: minDims,
};

/** Reduces known 1-D values over their only axis. */
function reduceData(data: KnownData | undefined, fold: Fold | undefined, keepDims: boolean): KnownData | undefined {
  if (!data || !fold || data.shape.length !== 1 || data.values.length === 0) return undefined;
  const value = data.values.reduce((left, right) => fold(left, right));
  return makeData(keepDims ? [1] : [], [value]);
}

function reduce(opType: string, readAxes: AxesReader) {
  return (ctx: InferenceContext): void => {
    const input = ctx.input(0);
    const keepDims = ctx.int("keepdims", 1) !== 0;
    const axes = readAxes(ctx);
    if (!input.shape || axes === "unknown") {
      ctx.setOutput(0, input.elemType, keepDims ? input.shape?.map(() => null) : undefined);
      return;
    }
    const rank = input.shape.length;
    if ((!axes || axes.length === 0) && ctx.int("noop_with_empty_axes", 0) !== 0) {
      ctx.setOutput(0, input.elemType, input.shape, ctx.data(0));
      return;
    }
    const reduced = new Set(axes && axes.length > 0 ? normalizeAxes(ctx, axes, rank) : input.shape.map((_, i) => i));
    const shape: Dim[] = [];
    input.shape.forEach((dim, axis) => {
      if (!reduced.has(axis)) shape.push(dim);
      else if (keepDims) shape.push(1);
    });
    ctx.setOutput(0, input.elemType, shape, reduceData(ctx.data(0), FOLDS[opType], keepDims));
  };
}

const REDUCTIONS = ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"];

function reductionRules(): RuleDefinition[] {
  const rules: RuleDefinition[] = [
    { opType: "ReduceSum", since: 1, infer: reduce("ReduceSum", axesAttribute) },
    { opType: "ReduceSum", since: 13, infer: reduce("ReduceSum", axesInput) },
  ];
  for (const opType of REDUCTIONS) {
    rules.push({ opType, since: 1, infer: reduce(opType, axesAttribute) }, { opType, since: 18, infer: reduce(opType, axesInput) });
  }
  return rules;
}

/** ArgMax and ArgMin: int64 indices with the axis removed or kept as 1. */
function argRule(ctx: InferenceContext): void {
  const shape = ctx.shape(0);
  if (!shape) {
    ctx.setOutput(0, DataType.INT64, undefined);
    return;
  }
  const axis = ctx.axis(ctx.int("axis", 0), shape.length);
  const keepDims = ctx.int("keepdims", 1) !== 0;
  const result = keepDims ? shape.map((dim, i) => (i === axis ? 1 : dim)) : shape.filter((_, i) => i !== axis);
  ctx.setOutput(0, DataType.INT64, result);
}

/** TopK: values and int64 indices with the axis resized to k (an attribute before opset 10, input 1 after). */
function topK(readK: (ctx: InferenceContext) => Dim) {
  return (ctx: InferenceContext): void => {
    const input = ctx.input(0);
    const k = readK(ctx);
    if (typeof k === "number" && !(Number.isInteger(k) && k >= 0)) ctx.fail(`k is ${k}, expected a non-negative integer`);
    let shape: Dim[] | undefined;
    if (input.shape) {
      const axis = ctx.axis(ctx.int("axis", -1), input.shape.length);
      const size = input.shape[axis];
      if (typeof k === "number" && typeof size === "number" && k > size) ctx.fail(`k is ${k}, more than the ${size} elements of axis ${axis}`);
      shape = input.shape.map((dim, i) => (i === axis ? k : dim));
    }
    ctx.setOutput(0, input.elemType, shape);
    ctx.setOutput(1, DataType.INT64, shape);
  };
}

export const reduceRules: RuleDefinition[] = [
  ...reductionRules(),
  { opType: "ArgMax", since: 1, infer: argRule },
  { opType: "ArgMin", since: 1, infer: argRule },
  { opType: "TopK", since: 1, infer: topK((ctx) => ctx.requireInt("k")) },
  { opType: "TopK", since: 10, infer: topK((ctx) => scalarFromInput(ctx, 1) ?? null) },
];
