import { PeftcError } from "../errors";
import { fusedRow } from "./lora-merge";
import type { Ia3Record } from "./ia3-record";

/**
 * Folds an (IA)3 vector into a base weight, in the weight's own storage
 * layout ([in, out] for `in_out`, [out, in] for `out_in`). An output
 * scaling multiplies each output row j (for a fused part, the part's rows
 * inside the projection) by l[j]; an input scaling multiplies each input
 * column i by l[i]. Returns a new array.
 */
export function mergeIa3Weight(weight: Float32Array, record: Pick<Ia3Record, "layout" | "inFeatures" | "outFeatures" | "moduleOutFeatures" | "feedforward" | "part" | "qkv" | "path">, vector: Float32Array): Float32Array {
  const { inFeatures, moduleOutFeatures: fusedOut } = record;
  if (weight.length !== inFeatures * fusedOut) {
    throw new PeftcError("E_TENSOR_DATA", `(IA)3 merge of ${record.path}: the weight has ${weight.length} values, not ${inFeatures} × ${fusedOut}.`);
  }
  const width = record.feedforward ? inFeatures : record.outFeatures;
  if (vector.length !== width) throw new PeftcError("E_TENSOR_DATA", `(IA)3 merge of ${record.path}: the vector has ${vector.length} values, but the ${record.feedforward ? "input" : "output"} is ${width} wide.`);
  const merged = Float32Array.from(weight);
  const index = (row: number, column: number): number => (record.layout === "out_in" ? row * inFeatures + column : column * fusedOut + row);
  if (record.feedforward) {
    for (let row = 0; row < fusedOut; row++) for (let column = 0; column < inFeatures; column++) merged[index(row, column)] *= vector[column];
    return merged;
  }
  const toFused = fusedRow(record);
  for (let row = 0; row < record.outFeatures; row++) {
    const target = toFused(row);
    for (let column = 0; column < inFeatures; column++) merged[index(target, column)] *= vector[row];
  }
  return merged;
}

/** Folds an output scaling into the bias [fused out]: b[j] · l[j] on the target's rows. An input scaling leaves the bias as it is. */
export function mergeIa3Bias(bias: Float32Array, record: Pick<Ia3Record, "outFeatures" | "feedforward" | "part" | "qkv">, vector: Float32Array): Float32Array {
  const merged = Float32Array.from(bias);
  if (record.feedforward) return merged;
  const toFused = fusedRow(record);
  for (let row = 0; row < record.outFeatures; row++) merged[toFused(row)] *= vector[row];
  return merged;
}
