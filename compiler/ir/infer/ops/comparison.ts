import { DataType } from "../../../onnx/dtype";
import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { DimOrder, compareDims, sameDim } from "../dims";
import { mapBroadcast } from "../known-data";
import { RuleDefinition } from "../registry";
import { broadcastInputs, commonElemType } from "./common";

/**
 * Comparisons, boolean logic and Where. Results are bool tensors (0 and 1
 * as known values). Comparing a shape value with a constant is decided when
 * it holds for every size, as with `Equal(Shape(x)[0], -1)`.
 */

/** The orders that make each comparison true or false; any other order leaves the result unknown. */
const COMPARISONS: Record<string, { since: number; whenTrue: DimOrder[]; whenFalse: DimOrder[] }> = {
  Equal: { since: 1, whenTrue: ["equal"], whenFalse: ["less", "greater"] },
  Less: { since: 1, whenTrue: ["less"], whenFalse: ["equal", "greater", "greater-or-equal"] },
  LessOrEqual: { since: 12, whenTrue: ["less", "less-or-equal", "equal"], whenFalse: ["greater"] },
  Greater: { since: 1, whenTrue: ["greater"], whenFalse: ["equal", "less", "less-or-equal"] },
  GreaterOrEqual: { since: 12, whenTrue: ["greater", "greater-or-equal", "equal"], whenFalse: ["less"] },
};

function compare(opType: string) {
  const { whenTrue, whenFalse } = COMPARISONS[opType];
  return (ctx: InferenceContext): void => {
    commonElemType(ctx, [0, 1]);
    ctx.setOutput(0, DataType.BOOL, broadcastInputs(ctx, [0, 1]));
    const data = mapBroadcast([ctx.data(0), ctx.data(1)], ([a, b]) => {
      const order = compareDims(a, b);
      if (whenTrue.includes(order)) return 1;
      return whenFalse.includes(order) ? 0 : null;
    });
    ctx.setOutputData(0, data);
  };
}

function truth(value: Dim): boolean | undefined {
  return typeof value === "number" ? value !== 0 : undefined;
}

function logic(apply: (a: boolean, b: boolean) => boolean) {
  return (ctx: InferenceContext): void => {
    ctx.setOutput(0, DataType.BOOL, broadcastInputs(ctx, [0, 1]));
    const data = mapBroadcast([ctx.data(0), ctx.data(1)], ([a, b]) => {
      const left = truth(a);
      const right = truth(b);
      return left === undefined || right === undefined ? null : Number(apply(left, right));
    });
    ctx.setOutputData(0, data);
  };
}

function notRule(ctx: InferenceContext): void {
  ctx.setOutput(0, DataType.BOOL, ctx.shape(0));
  ctx.setOutputData(0, mapBroadcast([ctx.data(0)], ([value]) => (typeof value === "number" ? Number(value === 0) : null)));
}

/** IsNaN and IsInf: bool of the input's shape. */
function floatTestRule(ctx: InferenceContext): void {
  ctx.setOutput(0, DataType.BOOL, ctx.shape(0));
}

/** Where(condition, X, Y): broadcast of all three, element type of X. */
function whereRule(ctx: InferenceContext): void {
  const elemType = commonElemType(ctx, [1, 2]);
  ctx.setOutput(0, elemType, broadcastInputs(ctx, [0, 1, 2]));
  const data = mapBroadcast([ctx.data(0), ctx.data(1), ctx.data(2)], ([condition, whenTrue, whenFalse]) => {
    const chosen = truth(condition);
    if (chosen !== undefined) return chosen ? whenTrue : whenFalse;
    return sameDim(whenTrue, whenFalse) ? whenTrue : null;
  });
  ctx.setOutputData(0, data);
}

export const comparisonRules: RuleDefinition[] = [
  ...Object.entries(COMPARISONS).map(([opType, { since }]) => ({ opType, since, infer: compare(opType) })),
  { opType: "And", since: 1, infer: logic((a, b) => a && b) },
  { opType: "Or", since: 1, infer: logic((a, b) => a || b) },
  { opType: "Xor", since: 1, infer: logic((a, b) => a !== b) },
  { opType: "Not", since: 1, infer: notRule },
  { opType: "IsNaN", since: 9, infer: floatTestRule },
  { opType: "IsInf", since: 10, infer: floatTestRule },
  { opType: "Where", since: 9, infer: whereRule },
];
