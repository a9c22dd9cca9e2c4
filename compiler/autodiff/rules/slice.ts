import { PeftcError } from "../../errors";
import { attr } from "../../ir/attribute";
import type { Node } from "../../ir/node";
import type { Value } from "../../ir/value";
import { constantInts } from "../../match/graph-walk";
import { DataType } from "../../onnx/dtype";
import type { GradBuilder } from "../grad-builder";
import type { GradientRule } from "../rule";
import { type IntOperand, addInts, concatInts, dimOf, intValue, subInts, zerosOfShape } from "./index-arithmetic";

// Constants beyond this are clamped before they become int64 tensors, so 2^63 - 1 ends (read as a rounded double) cannot overflow.
const INDEX_LIMIT = 2 ** 62;

/** Reads constant int inputs of a node, or raises an error naming the input. */
function requireConstantInts(node: Node, index: number, role: string): number[] {
  const values = constantInts(node.inputs[index]);
  if (values === undefined) {
    throw new PeftcError("E_SHAPE_INFERENCE", `${node.opType} node "${node.name}": its ${role} input is computed at run time; the gradient needs constant ${role}.`, { node: node.name });
  }
  return values;
}

/**
 * Computes the first input position a Slice entry reads along its axis, as
 * the ONNX Slice spec (opset 13) defines it. A negative start has the dim
 * added. The result is clamped to [0, dim] for a positive step and to
 * [0, dim - 1] for a negative one.
 */
function clampedStart(b: GradBuilder, node: Node, entry: number, dim: IntOperand, step: number): IntOperand {
  const starts = node.inputs[1]!;
  const constant = constantInts(starts)?.[entry];
  if (constant !== undefined && typeof dim === "number") {
    const wrapped = constant < 0 ? constant + dim : constant;
    return Math.max(0, Math.min(wrapped, step > 0 ? dim : dim - 1));
  }
  let start: Value;
  if (constant !== undefined) {
    start = b.ints([Math.max(-INDEX_LIMIT, Math.min(constant, INDEX_LIMIT))]);
  } else {
    const wide = b.dtype(starts) === DataType.INT64 ? starts : b.op("Cast", [starts], [attr.int("to", DataType.INT64)]);
    start = b.op("Gather", [wide, b.ints([entry])]);
  }
  const size = intValue(b, dim);
  const wrapped = b.op("Where", [b.op("Less", [start, b.ints([0])]), b.op("Add", [start, size]), start]);
  const upper = step > 0 ? size : intValue(b, subInts(b, dim, 1));
  return b.op("Max", [b.op("Min", [wrapped, upper]), b.ints([0])]);
}

/**
 * Slice. Slices along different axes compose, so the gradient undoes one
 * axis at a time. Axes with step 1, the common case, are undone together by
 * one zero Pad: `start` zeros before and `dim - start - n` after, where n is
 * the output's size. Other steps, negative ones included, scatter the
 * gradient into zeros at the positions start, start + step, ... along the
 * axis, which costs an int64 index tensor the size of the gradient. Starts
 * and ends may be computed at run time; axes and steps must be constants
 * because they decide the form of the backward graph.
 */
export const slice: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  const x = node.inputs[0]!;
  const rank = b.rank(x);
  if (rank === undefined) {
    throw new PeftcError("E_SHAPE_INFERENCE", `Slice node "${node.name}": the gradient needs the input's rank, which shape inference could not find.`, { node: node.name });
  }
  const startsDims = b.dims(node.inputs[1]!);
  const count = constantInts(node.inputs[1])?.length ?? (typeof startsDims?.[0] === "number" ? startsDims[0] : undefined);
  if (count === undefined) {
    throw new PeftcError("E_SHAPE_INFERENCE", `Slice node "${node.name}": the gradient needs the length of the starts input, which shape inference could not find.`, { node: node.name });
  }
  const hasInput = (index: number): boolean => node.inputs[index] !== undefined && !node.inputs[index]!.isOmitted;
  const axes = hasInput(3) ? requireConstantInts(node, 3, "axes").map((axis) => (axis < 0 ? axis + rank : axis)) : Array.from({ length: count }, (_, i) => i);
  const steps = hasInput(4) ? requireConstantInts(node, 4, "steps") : new Array<number>(count).fill(1);

  const dy = context.outputGrads[0]!;
  let grad = dy;
  const padsBefore: IntOperand[] = new Array<IntOperand>(rank).fill(0);
  const padsAfter: IntOperand[] = new Array<IntOperand>(rank).fill(0);
  for (let entry = 0; entry < count; entry++) {
    const axis = axes[entry];
    const step = steps[entry];
    if (step === 0) throw new PeftcError("E_ONNX_INVALID", `Slice node "${node.name}": step ${entry} is 0, which ONNX does not allow.`, { node: node.name });
    const dim = dimOf(b, x, axis);
    const start = clampedStart(b, node, entry, dim, step);
    const length = dimOf(b, node.outputs[0], axis);
    if (step === 1) {
      padsBefore[axis] = start;
      padsAfter[axis] = subInts(b, subInts(b, dim, start), length);
    } else {
      grad = scatterAlongAxis(b, grad, axis, rank, start, length, step, dim, b.dtype(x));
    }
  }
  if (padsBefore.every((pad) => pad === 0) && padsAfter.every((pad) => pad === 0)) return [grad];
  return [b.op("Pad", [grad, concatInts(b, [...padsBefore, ...padsAfter])], [attr.string("mode", "constant")])];
};

/** Places `grad`'s `length` elements along `axis` at start, start + step, ... of a zero tensor of `dtype` whose axis has `dim` elements. */
function scatterAlongAxis(b: GradBuilder, grad: Value, axis: number, rank: number, start: IntOperand, length: IntOperand, step: number, dim: IntOperand, dtype: DataType): Value {
  const toScalar = (operand: IntOperand): Value => (typeof operand === "number" ? b.intScalar(operand) : b.squeeze(operand, [0]));
  const limit = addInts(b, start, typeof length === "number" ? length * step : b.op("Mul", [length, b.ints([step])]));
  const positions = b.op("Range", [toScalar(start), toScalar(limit), b.intScalar(step)]);
  const alongAxis = Array.from({ length: rank }, (_, i) => (i === axis ? -1 : 1));
  const gradShape = b.op("Shape", [grad]);
  const indices = b.op("Expand", [b.op("Reshape", [positions, b.ints(alongAxis)]), gradShape]);
  const targetShape = b.op("ScatterElements", [gradShape, b.ints([axis]), intValue(b, dim)], [attr.int("axis", 0)]);
  const zeros = zerosOfShape(b, targetShape, dtype);
  return b.op("ScatterElements", [zeros, indices, grad], [attr.int("axis", axis)]);
}

/**
 * Pad in constant mode: padding the gradient by the negated pads removes
 * what the forward pass added and puts zeros where it cropped (negative
 * pads). Reflect, edge and wrap modes are not differentiated.
 */
export const pad: GradientRule = (context) => {
  if (!context.needsGrad(0) && !context.needsGrad(2)) return [];
  const { b, node } = context;
  const mode = node.getString("mode", "constant");
  if (mode !== "constant") {
    throw new PeftcError("E_UNKNOWN_DOMAIN", `Pad node "${node.name}": only constant mode has a gradient rule, but this node uses mode "${mode}".`, { node: node.name, op: "Pad" });
  }
  const pads = node.inputs[1]!;
  const constant = constantInts(pads);
  const negated = constant ? b.ints(constant.map((value) => -value)) : b.op("Neg", [pads]);
  const dy = context.outputGrads[0]!;
  const axes = node.inputs[3];
  const inputs = axes && !axes.isOmitted ? [dy, negated, undefined, axes] : [dy, negated];
  const dx = b.op("Pad", inputs, [attr.string("mode", "constant")]);
  // Every padded element equals the constant value, so its gradient is the sum of dy outside the part copied from x.
  const dValue = context.needsGrad(2) ? b.op("Sub", [b.op("ReduceSum", [dy], [attr.int("keepdims", 0)]), b.op("ReduceSum", [dx], [attr.int("keepdims", 0)])]) : undefined;
  return [context.needsGrad(0) ? dx : undefined, undefined, dValue];
};
