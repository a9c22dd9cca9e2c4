import { attr } from "../../ir/attribute";
import { Value } from "../../ir/value";
import { Scope } from "../model-builder";
import { add, div, floatScalar, mul, pow, reduceMean, sqrt, sub } from "../ops";
import { init } from "../weights";

/**
 * - `decomposed`: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add,
 *   as torch.onnx exports nn.LayerNorm before opset 17.
 * - `op`: one LayerNormalization node (opset 17 and later).
 */
export type LayerNormForm = "decomposed" | "op";

export interface LayerNormOptions {
  hidden: number;
  epsilon: number;
  form: LayerNormForm;
}

// Norm weights start near one and biases near zero. The noise makes a swapped
// or dropped weight or bias visible in the output.
const NORM_WEIGHT_INIT = init.normal(0.02, 1);
const NORM_BIAS_INIT = init.normal(0.02);

/** Applies nn.LayerNorm over the last axis with `<module>.weight` and `<module>.bias`. */
export function layerNorm(scope: Scope, x: Value, options: LayerNormOptions): Value {
  const weight = scope.parameter("weight", [options.hidden], NORM_WEIGHT_INIT);
  const bias = scope.parameter("bias", [options.hidden], NORM_BIAS_INIT);
  if (options.form === "op") {
    if (scope.opset < 17) {
      throw new RangeError(`LayerNormalization needs opset 17 or later, but the model is opset ${scope.opset}; use the decomposed form.`);
    }
    return scope.op("LayerNormalization", [x, weight, bias], [attr.int("axis", -1), attr.float("epsilon", options.epsilon)]);
  }
  const mean = reduceMean(scope, x, [-1]);
  const centered = sub(scope, x, mean);
  const variance = reduceMean(scope, pow(scope, centered, floatScalar(scope, 2)), [-1]);
  const std = sqrt(scope, add(scope, variance, floatScalar(scope, options.epsilon)));
  const normalized = div(scope, centered, std);
  return add(scope, mul(scope, normalized, weight), bias);
}

/**
 * Applies LLaMA's RMSNorm, x / sqrt(mean(x²) + ε) · weight, in the form
 * torch.onnx exports it: Pow, ReduceMean, Add, Sqrt, Div(1, ·) for the
 * reciprocal square root, Mul by x, then Mul by `<module>.weight`.
 */
export function rmsNorm(scope: Scope, x: Value, options: { hidden: number; epsilon: number }): Value {
  const weight = scope.parameter("weight", [options.hidden], NORM_WEIGHT_INIT);
  const meanSquare = reduceMean(scope, pow(scope, x, floatScalar(scope, 2)), [-1]);
  const rms = sqrt(scope, add(scope, meanSquare, floatScalar(scope, options.epsilon)));
  const normalized = mul(scope, x, div(scope, floatScalar(scope, 1), rms));
  return mul(scope, weight, normalized);
}
