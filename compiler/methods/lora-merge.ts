import { PeftcError } from "../errors";
import type { LoraRecord } from "./parameters";

/**
 * Computes a LoRA update in PyTorch orientation: ΔW = scale · B · A, shape
 * [out, in], from A [rank, in] and B [out, rank]. Sums run in float64 and are
 * rounded to float32 once.
 */
export function loraDelta(a: Float32Array, b: Float32Array, rank: number, inFeatures: number, outFeatures: number, scale: number): Float32Array {
  if (a.length !== rank * inFeatures || b.length !== outFeatures * rank) {
    throw new PeftcError("E_TENSOR_DATA", `LoRA update: A has ${a.length} values and B ${b.length}, but rank ${rank} on ${inFeatures} → ${outFeatures} needs ${rank * inFeatures} and ${outFeatures * rank}.`);
  }
  const delta = new Float32Array(outFeatures * inFeatures);
  for (let row = 0; row < outFeatures; row++) {
    for (let column = 0; column < inFeatures; column++) {
      let sum = 0;
      for (let k = 0; k < rank; k++) sum += b[row * rank + k] * a[k * inFeatures + column];
      delta[row * inFeatures + column] = scale * sum;
    }
  }
  return delta;
}

/**
 * Maps a row of a LoRA target's output to the row of the module's weight
 * output: the identity for a whole module, and for a part of a fused QKV
 * projection, the part's row inside its head group.
 */
export function fusedRow(record: Pick<LoraRecord, "part" | "qkv">): (row: number) => number {
  const layout = record.qkv;
  if (!record.part || !layout?.order || !layout.widths) return (row) => row;
  const widths = layout.widths;
  const part = record.part;
  const groupWidth = layout.order.reduce((sum, each) => sum + widths[each], 0);
  const offset = layout.order.slice(0, layout.order.indexOf(part)).reduce((sum, each) => sum + widths[each], 0);
  const width = widths[part];
  return (row) => Math.floor(row / width) * groupWidth + offset + (row % width);
}

/**
 * Returns the base weight with a LoRA update added, in the weight's own
 * storage layout ([in, out] for `in_out`, [out, in] for `out_in`), with a
 * part's update on that part's rows only.
 */
export function mergeLora(weight: Float32Array, record: Pick<LoraRecord, "layout" | "inFeatures" | "outFeatures" | "rank" | "scale" | "part" | "qkv">, a: Float32Array, b: Float32Array, fusedOut: number): Float32Array {
  const { inFeatures, outFeatures } = record;
  if (weight.length !== inFeatures * fusedOut) {
    throw new PeftcError("E_TENSOR_DATA", `LoRA merge: the weight has ${weight.length} values, not ${inFeatures} × ${fusedOut}.`);
  }
  const delta = loraDelta(a, b, record.rank, inFeatures, outFeatures, record.scale);
  const toFused = fusedRow(record);
  const merged = Float32Array.from(weight);
  for (let row = 0; row < outFeatures; row++) {
    const target = toFused(row);
    for (let column = 0; column < inFeatures; column++) {
      const index = record.layout === "out_in" ? target * inFeatures + column : column * fusedOut + target;
      merged[index] += delta[row * inFeatures + column];
    }
  }
  return merged;
}
