import { attr } from "../../ir/attribute";
import type { Value } from "../../ir/value";
import type { GradientRule } from "../rule";
import { type IntOperand, addInts, dimOf, intValue, zerosOfShape } from "./index-arithmetic";

/**
 * Concat: each input's gradient is its slice of the output gradient along
 * the axis. Offsets are sums of the earlier inputs' sizes, constants when
 * shape inference found them and read from the runtime shapes otherwise, so
 * symbolic sizes work. Only inputs that need a gradient get a Slice.
 */
export const concat: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const axis = node.getInt("axis")!;
  const lastNeeded = node.inputs.reduce((last, _, index) => (context.needsGrad(index) ? index : last), -1);
  const grads: (Value | undefined)[] = [];
  let offset: IntOperand = 0;
  for (let index = 0; index <= lastNeeded; index++) {
    const input = node.inputs[index]!;
    const size = dimOf(b, input, axis);
    const end = addInts(b, offset, size);
    if (context.needsGrad(index)) grads[index] = b.op("Slice", [dy, intValue(b, offset), intValue(b, end), b.ints([axis])]);
    offset = end;
  }
  return grads;
};

/**
 * Split: the input's gradient concatenates the outputs' gradients along the
 * axis. An output the loss does not read contributes zeros of its runtime
 * shape. The split sizes (an input from opset 13, `num_outputs` from 18) are
 * already fixed by the outputs' shapes, so the rule does not read them.
 */
export const split: GradientRule = (context) => {
  if (!context.needsGrad(0)) return [];
  const { b, node } = context;
  const dtype = b.dtype(node.inputs[0]!);
  const parts = node.outputs.map((output, index) => context.outputGrads[index] ?? zerosOfShape(b, b.shape(output), dtype));
  if (parts.length === 1) return [parts[0]];
  return [b.op("Concat", parts, [attr.int("axis", node.getInt("axis", 0))])];
};
