import { unary } from "./unary";

/**
 * Softmax (opset 13 semantics: one axis, default -1): dx = y · (dy - Σ dy·y)
 * with the sum over the axis. Reading y instead of x keeps no extra tensor.
 */
export const softmax = unary((b, dy, _x, y, context) => {
  const axis = context.node.getInt("axis", -1);
  const dot = b.reduceSum(b.op("Mul", [dy, y]), [axis], true);
  return b.op("Mul", [y, b.op("Sub", [dy, dot])]);
});

/** LogSoftmax (opset 13 semantics): dx = dy - eʸ · Σ dy, with the sum over the axis. */
export const logSoftmax = unary((b, dy, _x, y, context) => {
  const axis = context.node.getInt("axis", -1);
  const total = b.reduceSum(dy, [axis], true);
  return b.op("Sub", [dy, b.op("Mul", [b.op("Exp", [y]), total])]);
});
