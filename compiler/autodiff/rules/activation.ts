import { PeftcError } from "../../errors";
import type { Value } from "../../ir/value";
import { unbroadcast } from "../broadcast";
import type { GradBuilder } from "../grad-builder";
import type { GradientRule } from "../rule";
import { unary } from "./unary";

/** y = tanh(x): dx = dy · (1 - y²). */
export const tanh = unary((b, dy, _x, y) => b.op("Mul", [dy, b.op("Sub", [b.scalar(1, b.dtype(y)), b.op("Mul", [y, y])])]));

/** y = σ(x): dx = dy · y · (1 - y). */
export const sigmoid = unary((b, dy, _x, y) => b.op("Mul", [dy, b.op("Mul", [y, b.op("Sub", [b.scalar(1, b.dtype(y)), y])])]));

/** y = max(x, 0): dx = dy where y > 0, else 0 (so 0 at x = 0, as in PyTorch). */
export const relu = unary((b, dy, _x, y) => {
  const dtype = b.dtype(y);
  return b.op("Where", [b.op("Greater", [y, b.scalar(0, dtype)]), dy, b.scalar(0, dtype)]);
});

/** y = x for x > 0, αx otherwise: dx = dy or α·dy. It reads x because for α < 0 the sign of y differs from that of x. */
export const leakyRelu = unary((b, dy, x, _y, context) => {
  const dtype = b.dtype(x);
  const alpha = context.node.getFloat("alpha", 0.01);
  return b.op("Where", [b.op("Greater", [x, b.scalar(0, dtype)]), dy, b.op("Mul", [dy, b.scalar(alpha, dtype)])]);
});

/** y = ln(1 + eˣ): dx = dy · σ(x). */
export const softplus = unary((b, dy, x) => b.op("Mul", [dy, b.op("Sigmoid", [x])]));

/** GELU's derivative Φ(x) + x·φ(x), with Φ and φ the standard normal CDF and density. */
function geluExactSlope(b: GradBuilder, x: Value): Value {
  const dtype = b.dtype(x);
  const cdf = b.op("Mul", [b.op("Add", [b.op("Erf", [b.op("Mul", [x, b.scalar(Math.SQRT1_2, dtype)])]), b.scalar(1, dtype)]), b.scalar(0.5, dtype)]);
  const halfSquare = b.op("Mul", [b.op("Mul", [x, x]), b.scalar(-0.5, dtype)]);
  const density = b.op("Mul", [b.op("Exp", [halfSquare]), b.scalar(1 / Math.sqrt(2 * Math.PI), dtype)]);
  return b.op("Add", [cdf, b.op("Mul", [x, density])]);
}

/**
 * Derivative of the tanh approximation y = ½x(1 + tanh u) with
 * u = √(2/π)(x + 0.044715x³): ½(1 + t) + ½x(1 - t²)·√(2/π)(1 + 3·0.044715x²),
 * where t = tanh u.
 */
function geluTanhSlope(b: GradBuilder, x: Value): Value {
  const dtype = b.dtype(x);
  const c = Math.sqrt(2 / Math.PI);
  const square = b.op("Mul", [x, x]);
  const u = b.op("Mul", [b.op("Mul", [x, b.op("Add", [b.op("Mul", [square, b.scalar(0.044715, dtype)]), b.scalar(1, dtype)])]), b.scalar(c, dtype)]);
  const t = b.op("Tanh", [u]);
  const half = b.scalar(0.5, dtype);
  const one = b.scalar(1, dtype);
  const du = b.op("Add", [b.op("Mul", [square, b.scalar(3 * 0.044715 * c, dtype)]), b.scalar(c, dtype)]);
  const outer = b.op("Mul", [b.op("Add", [t, one]), half]);
  const inner = b.op("Mul", [b.op("Mul", [b.op("Mul", [x, half]), b.op("Sub", [one, b.op("Mul", [t, t])])]), du]);
  return b.op("Add", [outer, inner]);
}

/** Gelu (default domain, opset 20), with approximate "none" (erf) or "tanh". */
export const gelu = unary((b, dy, x, _y, context) => {
  const approximate = context.node.getString("approximate", "none");
  if (approximate !== "none" && approximate !== "tanh") {
    throw new PeftcError("E_ONNX_INVALID", `Gelu node "${context.node.name}": approximate must be "none" or "tanh", got "${approximate}".`, { node: context.node.name });
  }
  return b.op("Mul", [dy, approximate === "tanh" ? geluTanhSlope(b, x) : geluExactSlope(b, x)]);
});

/** com.microsoft::Gelu: the erf form. */
export const microsoftGelu = unary((b, dy, x) => b.op("Mul", [dy, geluExactSlope(b, x)]));

/** com.microsoft::BiasGelu: y = gelu(x + bias) with the exact (erf) GELU; the bias gradient is summed over the broadcast axes. */
export const biasGelu: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0];
  const [x, bias] = node.inputs as Value[];
  if (!dy || !(context.needsGrad(0) || context.needsGrad(1))) return [];
  const sum = b.typed(b.op("Add", [x, bias]), node.outputs[0]);
  const dsum = b.op("Mul", [dy, geluExactSlope(b, sum)]);
  return [context.needsGrad(0) ? dsum : undefined, context.needsGrad(1) ? unbroadcast(b, dsum, bias, b.dims(node.outputs[0])) : undefined];
};

/**
 * com.microsoft::FastGelu: the tanh form of GELU applied to X + bias, with
 * the optional bias broadcast along the last axis.
 */
export const fastGelu: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0];
  const [x, bias] = node.inputs;
  const hasBias = bias !== undefined && !bias.isOmitted;
  if (!dy || !(context.needsGrad(0) || (hasBias && context.needsGrad(1)))) return [];
  const sum = hasBias ? b.typed(b.op("Add", [x!, bias]), node.outputs[0]) : x!;
  const dsum = b.op("Mul", [dy, geluTanhSlope(b, sum)]);
  return [context.needsGrad(0) ? dsum : undefined, hasBias && context.needsGrad(1) ? unbroadcast(b, dsum, bias, b.dims(node.outputs[0])) : undefined];
};
