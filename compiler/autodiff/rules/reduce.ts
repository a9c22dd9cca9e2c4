import { PeftcError } from "../../errors";
import { attr } from "../../ir/attribute";
import type { Node } from "../../ir/node";
import type { Value } from "../../ir/value";
import { constantInts } from "../../match/graph-walk";
import type { GradBuilder } from "../grad-builder";
import type { GradientRule } from "../rule";

/** Reads a reduction's axes (input from opset 13 for ReduceSum and 18 for the others, attribute before), normalized; null means every axis. */
function reducedAxes(node: Node, rank: number): number[] | null {
  const fromInput = node.inputs[1] ? constantInts(node.inputs[1]) : undefined;
  if (node.inputs[1] && !node.inputs[1].isOmitted && fromInput === undefined) {
    throw new PeftcError("E_SHAPE_INFERENCE", `${node.opType} node "${node.name}": its axes input is computed at run time; the gradient needs constant axes.`, { node: node.name });
  }
  const axes = fromInput ?? node.getInts("axes");
  if (!axes || axes.length === 0) return node.getInt("noop_with_empty_axes", 0) === 1 ? [] : null;
  return axes.map((axis) => (axis < 0 ? axis + rank : axis)).sort((a, b) => a - b);
}

/** Brings the gradient of a reduction back to the input's shape: re-inserts dropped axes, then expands. */
function spread(b: GradBuilder, node: Node, dy: Value): { grad: Value; axes: number[] } {
  const x = node.inputs[0]!;
  const rank = b.rank(x);
  if (rank === undefined) throw new PeftcError("E_SHAPE_INFERENCE", `${node.opType} node "${node.name}": the gradient needs the input's rank, which shape inference could not find.`, { node: node.name });
  const axes = reducedAxes(node, rank) ?? Array.from({ length: rank }, (_, i) => i);
  const keepDims = node.getInt("keepdims", 1) === 1;
  const kept = keepDims || axes.length === 0 ? dy : b.unsqueeze(dy, axes);
  return { grad: b.op("Expand", [kept, b.shape(x)]), axes };
}

export const reduceSum: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  return [spread(context.b, context.node, context.outputGrads[0]!).grad];
};

/** Divides the sum's gradient by the number of elements averaged, taken from the shapes at run time. */
export const reduceMean: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  const { grad } = spread(b, node, context.outputGrads[0]!);
  const x = node.inputs[0]!;
  const dtype = b.dtype(x);
  const count = b.op("Div", [b.op("Cast", [b.op("Size", [x])], [attr.int("to", dtype)]), b.op("Cast", [b.op("Size", [node.outputs[0]])], [attr.int("to", dtype)])]);
  return [b.op("Div", [grad, count])];
};
