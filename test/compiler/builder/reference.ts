/**
 * Plain JavaScript references for the blocks under test, in float64 on
 * row-major arrays. They mirror the PyTorch definitions, not the ONNX graphs.
 */

/** [rows, inner] · [inner, columns]. */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, rows: number, inner: number, columns: number): Float64Array {
  const out = new Float64Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      let sum = 0;
      for (let k = 0; k < inner; k++) sum += a[r * inner + k] * b[k * columns + c];
      out[r * columns + c] = sum;
    }
  }
  return out;
}

/** Transposes a row-major [rows, columns] matrix. */
export function transposed(values: ArrayLike<number>, rows: number, columns: number): Float64Array {
  const out = new Float64Array(rows * columns);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c];
  return out;
}

/** Adds `bias` to each row of a [rows, width] matrix in place and returns it. */
export function addRows(values: Float64Array, bias: ArrayLike<number>): Float64Array {
  for (let i = 0; i < values.length; i++) values[i] += bias[i % bias.length];
  return values;
}

/** Applies `f` to each row of width `width`. */
export function mapRows(values: ArrayLike<number>, width: number, f: (row: number[]) => number[]): Float64Array {
  const out = new Float64Array(values.length);
  for (let start = 0; start < values.length; start += width) {
    out.set(f(Array.from({ length: width }, (_, i) => values[start + i])), start);
  }
  return out;
}

export function layerNormRow(row: number[], weight: ArrayLike<number>, bias: ArrayLike<number>, epsilon: number): number[] {
  const mean = row.reduce((sum, value) => sum + value, 0) / row.length;
  const variance = row.reduce((sum, value) => sum + (value - mean) ** 2, 0) / row.length;
  return row.map((value, i) => ((value - mean) / Math.sqrt(variance + epsilon)) * weight[i] + bias[i]);
}

export function rmsNormRow(row: number[], weight: ArrayLike<number>, epsilon: number): number[] {
  const meanSquare = row.reduce((sum, value) => sum + value * value, 0) / row.length;
  return row.map((value, i) => (value / Math.sqrt(meanSquare + epsilon)) * weight[i]);
}

export function softmaxRow(row: number[]): number[] {
  const max = Math.max(...row);
  const exps = row.map((value) => Math.exp(value - max));
  const sum = exps.reduce((total, value) => total + value, 0);
  return exps.map((value) => value / sum);
}

/** erf by its Maclaurin series, accurate to about 1e-15 for |x| < 3 (test inputs stay there). */
export function erf(x: number): number {
  if (Math.abs(x) >= 3) throw new Error(`reference erf is only accurate for |x| < 3, got ${x}`);
  let term = x;
  let sum = x;
  for (let n = 1; n < 80; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export const geluErf = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const silu = (x: number): number => x / (1 + Math.exp(-x));
