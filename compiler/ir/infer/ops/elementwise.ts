import { DataType, isFloatType } from "../../../onnx/dtype";
import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { addDims, divideDims, floorDivideDims, maxDims, minDims, modDims, multiplyDims, negateDim, subtractDims } from "../dims";
import { KnownData, mapBroadcast } from "../known-data";
import { RuleDefinition } from "../registry";
import { FirstVersion, broadcastInputs, commonElemType, rulesFor, sameAsFirstInput } from "./common";

/**
 * Elementwise operators: one output with the element type of the first
 * input, shaped like it (unary) or like the broadcast of all inputs.
 * Arithmetic on small integer tensors also carries their known values,
 * which is how exporters compute shapes at run time.
 */

/**
 * Unary operators whose output has the input's type and shape, each with
 * the opset that introduced it (onnx/defs/operator_sets.h). Their values
 * are not tracked.
 */
const SHAPE_PRESERVING: readonly FirstVersion[] = [
  ["Exp", 1], ["Log", 1], ["Sqrt", 1], ["Reciprocal", 1], ["Tanh", 1], ["Sigmoid", 1], ["Relu", 1], ["Softplus", 1],
  ["Softsign", 1], ["Elu", 1], ["Selu", 1], ["LeakyRelu", 1], ["HardSigmoid", 1], ["Softmax", 1], ["LogSoftmax", 1],
  ["Hardmax", 1], ["Clip", 1], ["LpNormalization", 1], ["Cos", 7], ["Sin", 7], ["Tan", 7], ["Acos", 7], ["Asin", 7],
  ["Atan", 7], ["Erf", 9], ["Sinh", 9], ["Cosh", 9], ["Asinh", 9], ["Acosh", 9], ["Atanh", 9], ["Shrink", 9], ["Sign", 9],
  ["MeanVarianceNormalization", 9], ["ThresholdedRelu", 10], ["Round", 11], ["CumSum", 11], ["Celu", 12],
  ["HardSwish", 14], ["Trilu", 14], ["Mish", 18], ["BitwiseNot", 18],
];

/** Gelu entered the default domain in opset 20; earlier graphs use com.microsoft::Gelu. */
const GELU: RuleDefinition = { opType: "Gelu", since: 20, infer: sameAsFirstInput };

function unaryWithData(apply: (value: Dim) => Dim) {
  return (ctx: InferenceContext): void => {
    sameAsFirstInput(ctx);
    ctx.setOutputData(0, mapBroadcast([ctx.data(0)], ([value]) => apply(value)));
  };
}

/** Applies `apply` to numbers; symbolic values are integer sizes, which Floor and Ceil leave unchanged. */
function numericOnly(apply: (value: number) => number): (value: Dim) => Dim {
  return (value) => {
    if (typeof value === "number") return apply(value);
    return value;
  };
}

/** Absolute value; symbolic values are dimensions and never negative. */
function absoluteValue(value: Dim): Dim {
  return typeof value === "number" ? Math.abs(value) : value;
}

type BinaryData = (a: Dim, b: Dim, ctx: InferenceContext) => Dim;

/** Output type of input 0, broadcast shape of all inputs, values computed with `apply` when known. */
function broadcastArithmetic(apply: BinaryData | undefined, typeChecked = true) {
  return (ctx: InferenceContext): void => {
    const indices = Array.from({ length: ctx.inputCount }, (_, i) => i);
    const elemType = typeChecked ? commonElemType(ctx, indices) : ctx.elemType(0);
    ctx.setOutput(0, elemType, broadcastInputs(ctx, indices));
    if (apply) ctx.setOutputData(0, foldData(ctx, indices, (a, b) => apply(a, b, ctx)));
  };
}

/** Folds several inputs' known values pairwise (Sum, Max, ... take any number of inputs). */
function foldData(ctx: InferenceContext, indices: readonly number[], apply: (a: Dim, b: Dim) => Dim): KnownData | undefined {
  return mapBroadcast(
    indices.map((index) => ctx.data(index)),
    (values) => values.reduce((left, right) => apply(left, right)),
  );
}

function divide(a: Dim, b: Dim, ctx: InferenceContext): Dim {
  if (isFloatType(ctx.elemType(0))) return typeof a === "number" && typeof b === "number" ? a / b : divideDims(a, b);
  if (typeof a === "number" && typeof b === "number") return b === 0 ? null : Math.trunc(a / b);
  // NOTE: integer Div truncates toward zero. Symbolic operands are sizes, never negative, so rounding down gives the same.
  return floorDivideDims(a, b);
}

function modulo(a: Dim, b: Dim, ctx: InferenceContext): Dim {
  if (ctx.int("fmod", 0) === 0) return modDims(a, b);
  return typeof a === "number" && typeof b === "number" && b !== 0 ? a % b : null;
}

function power(a: Dim, b: Dim): Dim {
  return typeof a === "number" && typeof b === "number" ? a ** b : null;
}

/** Sum, Mean, Max and Min take one or more inputs. */
function variadic(apply: BinaryData | undefined) {
  return (ctx: InferenceContext): void => {
    if (ctx.inputCount === 0) ctx.fail("needs at least one input", "Give the node an input.");
    broadcastArithmetic(apply)(ctx);
  };
}

/** PRelu: the slope broadcasts to X, so the output keeps X's shape. */
function preluRule(ctx: InferenceContext): void {
  commonElemType(ctx, [0, 1]);
  sameAsFirstInput(ctx);
}

function identityRule(ctx: InferenceContext): void {
  const type = ctx.inputValueType(0);
  ctx.setOutputType(0, type, ctx.data(0));
}

/**
 * Dropout: output like the input, and an optional mask of the same shape.
 * The mask has the input's element type up to Dropout-7 and is bool from
 * Dropout-10 on.
 */
function dropoutRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  ctx.setOutput(0, input.elemType, input.shape, ctx.data(0));
  ctx.setOutput(1, ctx.opset >= 10 ? DataType.BOOL : input.elemType, input.shape);
}

export const elementwiseRules: RuleDefinition[] = [
  ...rulesFor(SHAPE_PRESERVING, sameAsFirstInput),
  GELU,
  { opType: "Neg", since: 1, infer: unaryWithData(negateDim) },
  { opType: "Abs", since: 1, infer: unaryWithData(absoluteValue) },
  { opType: "Floor", since: 1, infer: unaryWithData(numericOnly(Math.floor)) },
  { opType: "Ceil", since: 1, infer: unaryWithData(numericOnly(Math.ceil)) },
  { opType: "Identity", since: 1, infer: identityRule },
  { opType: "Dropout", since: 1, infer: dropoutRule },
  { opType: "Add", since: 1, infer: broadcastArithmetic(addDims) },
  { opType: "Sub", since: 1, infer: broadcastArithmetic(subtractDims) },
  { opType: "Mul", since: 1, infer: broadcastArithmetic(multiplyDims) },
  { opType: "Div", since: 1, infer: broadcastArithmetic(divide) },
  { opType: "Mod", since: 10, infer: broadcastArithmetic(modulo) },
  { opType: "Pow", since: 1, infer: broadcastArithmetic(power, false) },
  { opType: "PRelu", since: 1, infer: preluRule },
  ...rulesFor([["BitShift", 11], ["BitwiseAnd", 18], ["BitwiseOr", 18], ["BitwiseXor", 18]], broadcastArithmetic(undefined)),
  // SwiGLU (opset 28): Swish(a) * b, broadcast like Mul.
  { opType: "SwiGLU", since: 28, infer: broadcastArithmetic(undefined) },
  { opType: "Sum", since: 1, infer: variadic(addDims) },
  { opType: "Mean", since: 1, infer: variadic(undefined) },
  { opType: "Max", since: 1, infer: variadic(maxDims) },
  { opType: "Min", since: 1, infer: variadic(minDims) },
];
