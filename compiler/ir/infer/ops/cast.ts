import { DataType, isFloatType, isIntegerType } from "../../../onnx/dtype";
import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { KnownData, mapBroadcast } from "../known-data";
import { RuleDefinition } from "../registry";

/** Cast and CastLike: the input's shape with a new element type; known values convert as the cast does. */

function convertValue(value: Dim, to: DataType): Dim {
  if (to === DataType.BOOL) return typeof value === "number" ? Number(value !== 0) : null;
  if (isIntegerType(to)) return typeof value === "number" ? Math.trunc(value) : value;
  if (isFloatType(to)) return value;
  return null;
}

function castData(data: KnownData | undefined, to: DataType): KnownData | undefined {
  if (!isIntegerType(to) && !isFloatType(to) && to !== DataType.BOOL) return undefined;
  return mapBroadcast([data], ([value]) => convertValue(value, to));
}

function castRule(ctx: InferenceContext): void {
  const to = ctx.requireInt("to");
  if (DataType[to] === undefined || to === DataType.UNDEFINED) {
    ctx.fail(`attribute "to" is ${to}, which is not an ONNX element type`, "Fix the attribute in the model.");
  }
  ctx.setOutput(0, to, ctx.shape(0), castData(ctx.data(0), to));
}

function castLikeRule(ctx: InferenceContext): void {
  const to = ctx.elemType(1);
  ctx.setOutput(0, to, ctx.shape(0), castData(ctx.data(0), to));
}

export const castRules: RuleDefinition[] = [
  { opType: "Cast", infer: castRule },
  { opType: "CastLike", infer: castLikeRule },
];
