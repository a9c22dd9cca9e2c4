import type * as ort from "onnxruntime-node";
import { int64Matrix } from "./artifacts";

/** Two rows of six token ids, the second padded at the end by two. */
export const PADDED_IDS = [
  [3, 14, 15, 92, 65, 35],
  [8, 97, 93, 23, 0, 0],
];
export const PADDED_MASK = [
  [1, 1, 1, 1, 1, 1],
  [1, 1, 1, 1, 0, 0],
];

/** Two token patterns the base models have never seen, so the loss has far to fall when a test trains on them. */
export const PATTERN_IDS = [
  [5, 17, 29, 41, 53, 65, 77, 89, 101, 113, 125, 137],
  [200, 190, 180, 170, 160, 150, 140, 130, 120, 110, 100, 90],
];

/**
 * Feeds of a causal-LM graph: input_ids, attention_mask (default: all ones)
 * and labels equal to the ids, with -100 (ignored by the loss) where the
 * mask is 0.
 */
export function causalLmBatch(ids: number[][], mask: number[][] = ids.map((row) => row.map(() => 1))): Record<string, ort.Tensor> {
  return { input_ids: int64Matrix(ids), attention_mask: int64Matrix(mask), labels: int64Matrix(ids.map((row, b) => row.map((id, t) => (mask[b][t] ? id : -100)))) };
}
