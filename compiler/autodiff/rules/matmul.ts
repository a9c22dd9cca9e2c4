import { PeftcError } from "../../errors";
import { attr } from "../../ir/attribute";
import type { Node } from "../../ir/node";
import type { Dim } from "../../ir/types";
import type { Value } from "../../ir/value";
import { unbroadcast } from "../broadcast";
import type { GradBuilder } from "../grad-builder";
import type { GradientRule } from "../rule";

/** Swaps the last two axes of a value of rank `rank`. */
export function transposeLast(b: GradBuilder, x: Value, rank: number): Value {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return b.op("Transpose", [x], [attr.ints("perm", perm)]);
}

/** Reads the operand ranks and output shape a batched matmul's gradient needs; both operands must have at least 2 axes. */
export function matMulRanks(b: GradBuilder, node: Node): { rankA: number; rankB: number; outputDims: Dim[] } {
  const rankA = b.rank(node.inputs[0]!);
  const rankB = b.rank(node.inputs[1]!);
  const outputDims = b.dims(node.outputs[0]);
  if (rankA === undefined || rankB === undefined || rankA < 2 || rankB < 2 || !outputDims) {
    throw new PeftcError("E_SHAPE_INFERENCE", `${node.opType} node "${node.name}": the gradient needs both operands' ranks (at least 2), but shape inference gives ${rankA ?? "unknown"} and ${rankB ?? "unknown"}.`, { node: node.name });
  }
  return { rankA, rankB, outputDims };
}

/**
 * Y = A·B over the last two axes, with broadcast batch axes: dA = dY·Bᵀ and
 * dB = Aᵀ·dY, each summed over the batch axes its operand was broadcast
 * along. A 2-D weight B against a batched A (every linear layer) gets
 * dB = flat(A)ᵀ·flat(dY), one matmul over all rows instead of a batched
 * product and a sum.
 */
export const matMul: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const [a, w] = node.inputs as Value[];
  const { rankA, rankB, outputDims } = matMulRanks(b, node);
  const batch = outputDims.slice(0, -2);
  const dimsA = b.dims(a)!;
  const dimsB = b.dims(w)!;
  let da: Value | undefined;
  let dw: Value | undefined;
  if (context.needsGrad(0)) {
    const product = b.op("MatMul", [dy, transposeLast(b, w, rankB)]);
    da = unbroadcast(b, product, a, [...batch, dimsA[rankA - 2], dimsA[rankA - 1]]);
  }
  if (context.needsGrad(1)) {
    if (rankB === 2) {
      const rows = b.op("Flatten", [a], [attr.int("axis", rankA - 1)]);
      const gradRows = b.op("Flatten", [dy], [attr.int("axis", outputDims.length - 1)]);
      dw = b.op("MatMul", [b.op("Transpose", [rows], [attr.ints("perm", [1, 0])]), gradRows]);
    } else {
      const product = b.op("MatMul", [transposeLast(b, a, rankA), dy]);
      dw = unbroadcast(b, product, w, [...batch, dimsB[rankB - 2], dimsB[rankB - 1]]);
    }
  }
  return [da, dw];
};

/** Y = alpha·A'·B' + beta·C with A' = Aᵀ when transA, B' = Bᵀ when transB. */
export const gemm: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const [a, w, c] = node.inputs;
  const alpha = node.getFloat("alpha", 1)!;
  const beta = node.getFloat("beta", 1)!;
  const transA = node.getInt("transA", 0) === 1;
  const transB = node.getInt("transB", 0) === 1;
  const dtype = b.dtype(dy);
  const scaled = alpha === 1 ? dy : b.op("Mul", [dy, b.scalar(alpha, dtype)]);
  const gemm = (x: Value, y: Value, tx: boolean, ty: boolean): Value => b.op("Gemm", [x, y], [attr.int("transA", tx ? 1 : 0), attr.int("transB", ty ? 1 : 0)]);
  // dA' = dY·B'ᵀ, and dA is its transpose when A was read transposed; likewise for B.
  let da: Value | undefined;
  let dw: Value | undefined;
  if (context.needsGrad(0)) da = transA ? gemm(w!, scaled, transB, true) : gemm(scaled, w!, false, !transB);
  if (context.needsGrad(1)) dw = transB ? gemm(scaled, a!, true, transA) : gemm(a!, scaled, !transA, false);
  let dc: Value | undefined;
  if (c && context.needsGrad(2)) {
    const scaledC = beta === 1 ? dy : b.op("Mul", [dy, b.scalar(beta, dtype)]);
    dc = unbroadcast(b, scaledC, c, b.dims(node.outputs[0]));
  }
  return [da, dw, dc];
};
