import { PeftcError } from "../../errors";
import type { Value } from "../../ir/value";
import { unbroadcast } from "../broadcast";
import type { GradientRule } from "../rule";
import { matMulRanks, transposeLast } from "./matmul";

/**
 * com.microsoft::FusedMatMul: Y = alpha · A'·B' with A' = Aᵀ when transA and
 * B' = Bᵀ when transB (last two axes), broadcasting batch axes as MatMul.
 * dA' = alpha · dY·B'ᵀ and dB' = alpha · A'ᵀ·dY, transposed back where the
 * operand was read transposed. The batch-transpose attributes are rejected.
 */
export const fusedMatMul: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const [a, w] = node.inputs as Value[];
  if (node.getInt("transBatchA", 0) !== 0 || node.getInt("transBatchB", 0) !== 0) {
    throw new PeftcError("E_UNKNOWN_DOMAIN", `FusedMatMul node "${node.name}": the gradient of transBatchA and transBatchB is not implemented. Export the model without onnxruntime's FusedMatMul fusion.`, { node: node.name });
  }
  const { rankA, rankB, outputDims } = matMulRanks(b, node);
  const alpha = node.getFloat("alpha", 1)!;
  const transA = node.getInt("transA", 0) === 1;
  const transB = node.getInt("transB", 0) === 1;
  const scaled = alpha === 1 ? dy : b.op("Mul", [dy, b.scalar(alpha, b.dtype(node.outputs[0]))]);
  const readA = transA ? transposeLast(b, a, rankA) : a;
  const readB = transB ? transposeLast(b, w, rankB) : w;
  const batch = outputDims.slice(0, -2);
  const lastTwo = (value: Value, rank: number): (string | number | null)[] => b.dims(value)!.slice(rank - 2);
  let da: Value | undefined;
  let dw: Value | undefined;
  if (context.needsGrad(0)) {
    const product = b.op("MatMul", [scaled, transposeLast(b, readB, rankB)]);
    const oriented = transA ? transposeLast(b, product, outputDims.length) : product;
    da = unbroadcast(b, oriented, a, [...batch, ...lastTwo(a, rankA)]);
  }
  if (context.needsGrad(1)) {
    const product = b.op("MatMul", [transposeLast(b, readA, rankA), scaled]);
    const oriented = transB ? transposeLast(b, product, outputDims.length) : product;
    dw = unbroadcast(b, oriented, w, [...batch, ...lastTwo(w, rankB)]);
  }
  return [da, dw];
};
