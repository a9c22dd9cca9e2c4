import { Value } from "../../ir/value";
import { Scope } from "../model-builder";
import { add, div, erf, floatScalar, mul, pow, sigmoid, tanh } from "../ops";

/** Applies GELU with erf, 0.5 · x · (1 + erf(x / √2)), as torch.onnx exports nn.GELU() (BERT). */
export function geluErf(scope: Scope, x: Value): Value {
  const erfTerm = erf(scope, div(scope, x, floatScalar(scope, Math.SQRT2)));
  const scaled = mul(scope, x, add(scope, erfTerm, floatScalar(scope, 1)));
  return mul(scope, scaled, floatScalar(scope, 0.5));
}

/**
 * Applies GELU's tanh approximation (GPT-2's "gelu_new"),
 * 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))), node by node as
 * torch.onnx exports the Python expression.
 */
export function geluTanh(scope: Scope, x: Value): Value {
  const half = mul(scope, floatScalar(scope, 0.5), x);
  const cubic = mul(scope, floatScalar(scope, 0.044715), pow(scope, x, floatScalar(scope, 3)));
  const inner = mul(scope, floatScalar(scope, Math.sqrt(2 / Math.PI)), add(scope, x, cubic));
  return mul(scope, half, add(scope, floatScalar(scope, 1), tanh(scope, inner)));
}

/** Applies SiLU, x · sigmoid(x), as torch.onnx exports nn.SiLU: Sigmoid, then Mul. */
export function silu(scope: Scope, x: Value): Value {
  return mul(scope, x, sigmoid(scope, x));
}
