import { Value } from "../../ir/value";
import { DataType } from "../../onnx/dtype";
import { Tensor } from "../../onnx/tensor";
import { Scope } from "../model-builder";
import { add, gemm, matMul, transpose } from "../ops";
import { WeightInit, init } from "../weights";

/**
 * The storage layout of a linear layer's weight, as exporters write it:
 * - `transpose`: PyTorch nn.Linear exported without constant folding. The
 *   weight `<module>.weight` is [out, in] and a Transpose node feeds MatMul.
 * - `folded`: nn.Linear after constant folding. The transposed weight is a
 *   separate [in, out] initializer named `onnx::MatMul_<n>`, and only the bias
 *   keeps the module name.
 * - `conv1d`: GPT-2's Conv1D. The weight `<module>.weight` is [in, out] and
 *   feeds MatMul directly, and the bias is added after.
 * - `gemm`: nn.Linear on 2-D input, one Gemm with transB=1 on the [out, in]
 *   weight and the bias.
 */
export type LinearLayout = "transpose" | "folded" | "conv1d" | "gemm";

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  layout: LinearLayout;
  bias: boolean;
  /** Default: normal with std 0.02, as GPT-2, BERT and LLaMA initialize linear weights. */
  weightInit?: WeightInit;
  /** Default: normal with std 0.02 (not zero, so a dropped bias changes the output). */
  biasInit?: WeightInit;
}

/** The output of a linear layer and the initializers it reads. */
export interface LinearResult {
  output: Value;
  weight: Value;
  bias: Value | undefined;
}

/** Applies a linear layer of the module at `scope` to `x` in the given layout. */
export function linear(scope: Scope, x: Value, options: LinearOptions): LinearResult {
  const { inFeatures, outFeatures, layout } = options;
  const weightInit = options.weightInit ?? init.normal(0.02);
  const bias = options.bias ? scope.parameter("bias", [outFeatures], options.biasInit ?? init.normal(0.02)) : undefined;

  if (layout === "gemm") {
    const weight = scope.parameter("weight", [outFeatures, inFeatures], weightInit);
    return { output: gemm(scope, x, weight, bias, { transB: true }), weight, bias };
  }

  let weight: Value;
  let product: Value;
  if (layout === "transpose") {
    weight = scope.parameter("weight", [outFeatures, inFeatures], weightInit);
    product = matMul(scope, x, transpose(scope, weight, [1, 0]));
  } else if (layout === "folded") {
    weight = foldedWeight(scope, inFeatures, outFeatures, weightInit);
    product = matMul(scope, x, weight);
  } else {
    weight = scope.parameter("weight", [inFeatures, outFeatures], weightInit);
    product = matMul(scope, x, weight);
  }
  if (!bias) return { output: product, weight, bias };
  // torch.onnx writes nn.Linear's bias as Add(bias, product), while GPT-2's Conv1D adds it after.
  const output = layout === "conv1d" ? add(scope, product, bias) : add(scope, bias, product);
  return { output, weight, bias };
}

/**
 * Applies a head whose weight is an embedding matrix [vocab, hidden] shared
 * with the input embedding: Transpose, then MatMul, as torch.onnx exports a
 * tied lm_head without constant folding.
 */
export function tiedLinear(scope: Scope, x: Value, embeddingWeight: Value): Value {
  return matMul(scope, x, transpose(scope, embeddingWeight, [1, 0]));
}

/** Adds the [in, out] transposed copy of `<module>.weight` under an `onnx::MatMul_<n>` name. */
function foldedWeight(scope: Scope, inFeatures: number, outFeatures: number, weightInit: WeightInit): Value {
  const builder = scope.builder;
  const values = builder.weights.transposedValues(scope.parameterName("weight"), outFeatures, inFeatures, weightInit);
  const name = builder.anonymousName("onnx::MatMul");
  return builder.initializer(Tensor.fromArray(name, DataType.FLOAT, [inFeatures, outFeatures], values));
}
