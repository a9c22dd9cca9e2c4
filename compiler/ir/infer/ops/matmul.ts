import { DataType } from "../../../onnx/dtype";
import { Dim, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { broadcastShapes } from "../dims";
import { RuleDefinition } from "../registry";

/**
 * Matrix products: MatMul (numpy semantics, with 1-D operands promoted and
 * their dimension dropped again), Gemm, and onnxruntime's FusedMatMul and
 * MatMulNBits.
 */

/** Computes the numpy matmul shape of two operand shapes; fails on mismatched inner sizes. */
export function matmulShape(ctx: InferenceContext, left: readonly Dim[], right: readonly Dim[]): Dim[] {
  if (left.length === 0 || right.length === 0) ctx.fail("matrix product operands must have rank 1 or more, got a scalar");
  const a = left.length === 1 ? [1, left[0]] : [...left];
  const b = right.length === 1 ? [right[0], 1] : [...right];
  const inner = a[a.length - 1];
  const innerRight = b[b.length - 2];
  if (typeof inner === "number" && typeof innerRight === "number" && inner !== innerRight) {
    ctx.fail(`inner dimensions differ: ${formatShape([...left])} times ${formatShape([...right])}`);
  }
  const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)]);
  if (typeof batch === "string") ctx.fail(`batch dimensions: ${batch}`);
  const result = [...batch];
  if (left.length !== 1) result.push(a[a.length - 2]);
  if (right.length !== 1) result.push(b[b.length - 1]);
  return result;
}

function matmulRule(ctx: InferenceContext): void {
  const left = ctx.input(0);
  const right = ctx.input(1);
  const shape = left.shape && right.shape ? matmulShape(ctx, left.shape, right.shape) : undefined;
  ctx.setOutput(0, left.elemType, shape);
}

/** MatMulInteger returns int32 whatever the 8-bit operand types. */
function matmulIntegerRule(ctx: InferenceContext): void {
  const left = ctx.shape(0);
  const right = ctx.shape(1);
  ctx.setOutput(0, DataType.INT32, left && right ? matmulShape(ctx, left, right) : undefined);
}

/** Gemm: Y[M, N] = alpha * A'[M, K] * B'[K, N] + beta * C, where ' is the optional transpose. */
function gemmRule(ctx: InferenceContext): void {
  const a = ctx.input(0);
  const b = ctx.shape(1);
  if (!a.shape || !b) {
    ctx.setOutput(0, a.elemType, [null, null]);
    return;
  }
  if (a.shape.length !== 2 || b.length !== 2) ctx.fail(`A and B must be 2-D, got ${formatShape(a.shape)} and ${formatShape(b)}`);
  const [m, k] = ctx.int("transA", 0) ? [a.shape[1], a.shape[0]] : a.shape;
  const [kRight, n] = ctx.int("transB", 0) ? [b[1], b[0]] : b;
  if (typeof k === "number" && typeof kRight === "number" && k !== kRight) {
    ctx.fail(`inner dimensions differ: A gives K=${k}, B gives K=${kRight}`);
  }
  ctx.setOutput(0, a.elemType, [m, n]);
}

/**
 * Moves a FusedMatMul operand into plain [batch..., rows, columns] order.
 * transBatch moves the first axis to just before the last, and trans swaps
 * the last two. A 1-D operand is left alone, as onnxruntime does.
 */
function fusedOperand(shape: readonly Dim[], transpose: boolean, transposeBatch: boolean): Dim[] {
  const rank = shape.length;
  if (rank === 1) return [...shape];
  const batch = transposeBatch ? shape.slice(1, rank - 1) : shape.slice(0, rank - 2);
  const rows = transposeBatch ? shape[0] : shape[rank - 2];
  const columns = shape[rank - 1];
  return transpose ? [...batch, columns, rows] : [...batch, rows, columns];
}

function fusedMatmulRule(ctx: InferenceContext): void {
  const left = ctx.input(0);
  const right = ctx.shape(1);
  if (!left.shape || !right) {
    ctx.setOutput(0, left.elemType, undefined);
    return;
  }
  const a = fusedOperand(left.shape, ctx.int("transA", 0) !== 0, ctx.int("transBatchA", 0) !== 0);
  const b = fusedOperand(right, ctx.int("transB", 0) !== 0, ctx.int("transBatchB", 0) !== 0);
  ctx.setOutput(0, left.elemType, matmulShape(ctx, a, b));
}

/**
 * MatMulNBits (com.microsoft): A [..., K] times a block-quantized B stored
 * as [N, blocks, blob] uint8, so Y is [..., N] with the type of A.
 */
function matmulNBitsRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  const columns = ctx.requireInt("N");
  const inner = ctx.requireInt("K");
  if (columns < 0 || inner < 0) ctx.fail(`attributes N (${columns}) and K (${inner}) must not be negative`, "Fix the attributes in the model.");
  const last = input.shape?.[input.shape.length - 1];
  if (input.shape?.length === 0) ctx.fail("A must have rank 1 or more, got a scalar");
  if (typeof last === "number" && last !== inner) ctx.fail(`A's last dimension is ${last} but attribute K is ${inner}`);
  ctx.setOutput(0, input.elemType, input.shape && [...input.shape.slice(0, -1), columns]);
}

export const matmulRules: RuleDefinition[] = [
  { opType: "MatMul", since: 1, infer: matmulRule },
  { opType: "MatMulInteger", since: 10, infer: matmulIntegerRule },
  { opType: "Gemm", since: 1, infer: gemmRule },
  { opType: "FusedMatMul", domain: "com.microsoft", since: 1, infer: fusedMatmulRule },
  { opType: "TransposeMatMul", domain: "com.microsoft", since: 1, infer: fusedMatmulRule },
  { opType: "MatMulNBits", domain: "com.microsoft", since: 1, infer: matmulNBitsRule },
];
