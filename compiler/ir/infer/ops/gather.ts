import { DataType } from "../../../onnx/dtype";
import { Dim, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { KnownData, makeData, numericValues } from "../known-data";
import { RuleDefinition } from "../registry";
import { sameAsFirstInput } from "./common";

/**
 * Indexing operators: Gather, GatherElements, GatherND, the Scatter family
 * (output like the data input) and NonZero. Gather on a known shape vector
 * with constant indices yields known values: `Shape(x)[0]` is `batch`.
 */

/** Gathers known values of a 1-D tensor along axis 0 with constant indices. */
function gatherData(data: KnownData | undefined, indices: KnownData | undefined, ctx: InferenceContext): KnownData | undefined {
  const positions = numericValues(indices);
  if (!data || !indices || !positions || data.shape.length !== 1) return undefined;
  const length = data.shape[0];
  const values = positions.map((position) => {
    const at = position < 0 ? position + length : position;
    if (!Number.isInteger(at) || at < 0 || at >= length) ctx.fail(`index ${position} is out of range for a dimension of size ${length}`);
    return data.values[at];
  });
  return makeData(indices.shape, values);
}

function gatherRule(ctx: InferenceContext): void {
  const data = ctx.input(0);
  const indices = ctx.shape(1);
  if (!data.shape || !indices) {
    ctx.setOutput(0, data.elemType, undefined);
    return;
  }
  const axis = ctx.axis(ctx.int("axis", 0), data.shape.length);
  const shape = [...data.shape.slice(0, axis), ...indices, ...data.shape.slice(axis + 1)];
  ctx.setOutput(0, data.elemType, shape, axis === 0 ? gatherData(ctx.data(0), ctx.data(1), ctx) : undefined);
}

function gatherElementsRule(ctx: InferenceContext): void {
  const data = ctx.input(0);
  const indices = ctx.shape(1);
  if (data.shape && indices && data.shape.length !== indices.length) {
    ctx.fail(`data ${formatShape(data.shape)} and indices ${formatShape(indices)} must have the same rank`);
  }
  ctx.setOutput(0, data.elemType, indices);
}

/** GatherND: indices[:-1] + data[batch_dims + indices[-1]:]; needs the last indices dimension as a number. */
function gatherNdRule(ctx: InferenceContext): void {
  const data = ctx.input(0);
  const indices = ctx.shape(1);
  const depth = indices?.[indices.length - 1];
  if (!data.shape || !indices || typeof depth !== "number") {
    ctx.setOutput(0, data.elemType, undefined);
    return;
  }
  const batchDims = ctx.int("batch_dims", 0);
  if (batchDims + depth > data.shape.length) {
    ctx.fail(`indices address ${depth} axes after ${batchDims} batch axes, but the data has rank ${data.shape.length}`);
  }
  ctx.setOutput(0, data.elemType, [...indices.slice(0, -1), ...data.shape.slice(batchDims + depth)]);
}

/** NonZero: int64 [rank, count] where the count depends on the values. */
function nonZeroRule(ctx: InferenceContext): void {
  const shape = ctx.shape(0);
  const rank: Dim = shape ? shape.length : null;
  ctx.setOutput(0, DataType.INT64, [rank, null]);
}

export const gatherRules: RuleDefinition[] = [
  { opType: "Gather", since: 1, infer: gatherRule },
  { opType: "GatherElements", since: 11, infer: gatherElementsRule },
  { opType: "GatherND", since: 11, infer: gatherNdRule },
  { opType: "ScatterND", since: 11, infer: sameAsFirstInput },
  { opType: "ScatterElements", since: 11, infer: sameAsFirstInput },
  { opType: "Scatter", since: 9, infer: sameAsFirstInput },
  { opType: "NonZero", since: 9, infer: nonZeroRule },
];
