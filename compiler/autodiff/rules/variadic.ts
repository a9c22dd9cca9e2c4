import { attr } from "../../ir/attribute";
import type { Value } from "../../ir/value";
import { unbroadcast } from "../broadcast";
import type { GradientRule } from "../rule";

/** Sum of any number of inputs with numpy broadcasting: each input gets dy, summed over its broadcast axes. */
export const sum: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const dims = b.dims(node.outputs[0]);
  return node.inputs.map((input, index) => (input && context.needsGrad(index) ? unbroadcast(b, dy, input, dims) : undefined));
};

/** Mean of any number of inputs: each input gets dy / n, summed over its broadcast axes. */
export const mean: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const dims = b.dims(node.outputs[0]);
  const scaled = b.op("Div", [dy, b.scalar(node.inputs.length, b.dtype(dy))]);
  return node.inputs.map((input, index) => (input && context.needsGrad(index) ? unbroadcast(b, scaled, input, dims) : undefined));
};

/**
 * Max and Min of any number of inputs with broadcasting: dy goes to the
 * inputs equal to the output, split evenly among ties, as PyTorch's
 * torch.maximum and torch.minimum do for two inputs.
 */
export const extremum: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const y = node.outputs[0];
  const inputs = node.inputs as Value[];
  if (inputs.length === 1) return [context.needsGrad(0) ? dy : undefined];
  const dtype = b.dtype(dy);
  const dims = b.dims(y);
  // Every mask has the output's shape because Equal broadcasts each input against y.
  const masks = inputs.map((input) => b.op("Cast", [b.op("Equal", [input, y])], [attr.int("to", dtype)]));
  const ties = masks.length === 2 ? b.op("Add", masks) : b.op("Sum", masks);
  const share = b.op("Div", [dy, ties]);
  return inputs.map((input, index) => (context.needsGrad(index) ? unbroadcast(b, b.op("Mul", [share, masks[index]]), input, dims) : undefined));
};
