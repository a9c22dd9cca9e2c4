import { attr } from "../../ir/attribute";
import type { Value } from "../../ir/value";
import type { GradBuilder } from "../grad-builder";
import type { GradientContext, GradientRule } from "../rule";

/**
 * Builds the rule of a one-input op from its input gradient, given dy, the
 * input x and the output y. Outputs after the first carry no gradient.
 */
export function unary(gradient: (b: GradBuilder, dy: Value, x: Value, y: Value, context: GradientContext) => Value): GradientRule {
  return (context) => {
    const dy = context.outputGrads[0];
    if (!dy || !context.needsGrad(0)) return [];
    return [gradient(context.b, dy, context.node.inputs[0]!, context.node.outputs[0], context)];
  };
}

/** y = √x: dx = dy / (2y). */
export const sqrt = unary((b, dy, _x, y) => b.op("Div", [dy, b.op("Mul", [y, b.scalar(2, b.dtype(y))])]));

/** y = 1/x: dx = -dy · y². */
export const reciprocal = unary((b, dy, _x, y) => b.op("Neg", [b.op("Mul", [dy, b.op("Mul", [y, y])])]));

/** y = eˣ: dx = dy · y. */
export const exp = unary((b, dy, _x, y) => b.op("Mul", [dy, y]));

/** y = ln x: dx = dy / x. */
export const log = unary((b, dy, x) => b.op("Div", [dy, x]));

/** y = |x|: dx = dy · sign(x), so the gradient at 0 is 0, as in PyTorch. */
export const abs = unary((b, dy, x) => b.op("Mul", [dy, b.op("Sign", [x])]));

/** y = erf(x): dx = dy · 2/√π · exp(-x²). */
export const erf = unary((b, dy, x) => {
  const dtype = b.dtype(x);
  const gaussian = b.op("Exp", [b.op("Neg", [b.op("Mul", [x, x])])]);
  return b.op("Mul", [dy, b.op("Mul", [gaussian, b.scalar(2 / Math.sqrt(Math.PI), dtype)])]);
});

export const identity = unary((_b, dy) => dy);

/**
 * Cast between float types passes the gradient back cast to the input's
 * type. A cast from an integer or bool input never reaches here with
 * needsGrad true, and a cast to an integer or bool type has no output
 * gradient, because the backward pass carries gradients on float values only.
 */
export const cast = unary((b, dy, x) => (b.dtype(dy) === b.dtype(x) ? dy : b.op("Cast", [dy], [attr.int("to", b.dtype(x))])));
