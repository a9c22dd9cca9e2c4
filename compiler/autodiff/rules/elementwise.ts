import { attr } from "../../ir/attribute";
import type { Value } from "../../ir/value";
import { unbroadcast } from "../broadcast";
import type { GradientContext, GradientRule } from "../rule";

/** Gradients of a binary op with numpy broadcasting, given the unreduced gradient of each operand. */
function binary(context: GradientContext, left: () => Value, right: () => Value): (Value | undefined)[] {
  const { b, node } = context;
  const dims = b.dims(node.outputs[0]);
  return [
    context.needsGrad(0) ? unbroadcast(b, left(), node.inputs[0]!, dims) : undefined,
    context.needsGrad(1) ? unbroadcast(b, right(), node.inputs[1]!, dims) : undefined,
  ];
}

export const add: GradientRule = (context) => {
  const dy = context.outputGrads[0]!;
  return binary(context, () => dy, () => dy);
};

export const sub: GradientRule = (context) => {
  const dy = context.outputGrads[0]!;
  return binary(context, () => dy, () => context.b.op("Neg", [dy]));
};

export const mul: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const [x, y] = node.inputs as Value[];
  return binary(context, () => b.op("Mul", [dy, y]), () => b.op("Mul", [dy, x]));
};

/** z = x / y: dx = dz / y, dy = -dz · z / y. */
export const div: GradientRule = (context) => {
  const { b, node } = context;
  const dz = context.outputGrads[0]!;
  const y = node.inputs[1]!;
  const z = node.outputs[0];
  return binary(context, () => b.op("Div", [dz, y]), () => b.op("Neg", [b.op("Div", [b.op("Mul", [dz, z]), y])]));
};

export const neg: GradientRule = (context) => [context.needsGrad(0) ? context.b.op("Neg", [context.outputGrads[0]!]) : undefined];

/**
 * z = x ^ p: dx = dz · p · x^(p-1); dp = dz · z · ln x, which is only
 * defined for x > 0, as in PyTorch.
 */
export const pow: GradientRule = (context) => {
  const { b, node } = context;
  const dz = context.outputGrads[0]!;
  const [x, p] = node.inputs as Value[];
  const dtype = b.dtype(x);
  // ONNX lets the exponent have another type (an integer power); the gradient needs it in x's type.
  const exponent = b.dtype(p) === dtype ? p : b.op("Cast", [p], [attr.int("to", dtype)]);
  return binary(
    context,
    () => b.op("Mul", [dz, b.op("Mul", [exponent, b.op("Pow", [x, b.op("Sub", [exponent, b.scalar(1, dtype)])])])]),
    () => b.op("Mul", [dz, b.op("Mul", [node.outputs[0], b.op("Log", [x])])]),
  );
};
