import { Random } from "./random";

/**
 * The distribution of a parameter's initial values. Every parameter draws
 * from its own stream, keyed by the model seed and the parameter's PyTorch
 * name, so its values do not depend on the order in which a recipe builds
 * modules.
 */
export type WeightInit =
  | { kind: "normal"; std: number; mean?: number }
  | { kind: "zeros" }
  | { kind: "ones" }
  | { kind: "values"; values: Float32Array };

/** WeightInit constructors: `init.normal(0.02)`, `init.ones()`, … */
export const init = {
  normal: (std: number, mean = 0): WeightInit => ({ kind: "normal", std, mean }),
  zeros: (): WeightInit => ({ kind: "zeros" }),
  ones: (): WeightInit => ({ kind: "ones" }),
  values: (values: Float32Array): WeightInit => ({ kind: "values", values }),
};

/**
 * The contents of parameter tensors:
 * - `seeded`: values drawn as each parameter's WeightInit specifies.
 * - `zeros`: every parameter is zero and all of them are views of one shared
 *   zero-filled buffer, so even a GPT-2-small-sized model costs almost no
 *   memory. Use it to count parameters or test graph structure. The model is
 *   valid and can be saved, but its outputs are meaningless.
 */
export type WeightMode = "seeded" | "zeros";

/** Creates the float32 values of parameters for one model. */
export class WeightFactory {
  private zeroBuffer = new ArrayBuffer(0);

  constructor(
    readonly seed: number,
    readonly mode: WeightMode,
  ) {}

  /**
   * Returns `count` values for the parameter whose random stream is `key`.
   * In `zeros` mode the array is a view of shared storage. The IR never
   * writes tensor data in place, and callers must not either.
   */
  values(key: string, count: number, weightInit: WeightInit): Float32Array {
    if (this.mode === "zeros") return this.sharedZeros(count);
    switch (weightInit.kind) {
      case "normal": {
        const values = new Float32Array(count);
        new Random(this.seed, key).fillNormal(values, weightInit.std, weightInit.mean ?? 0);
        return values;
      }
      case "zeros":
        return new Float32Array(count);
      case "ones":
        return new Float32Array(count).fill(1);
      case "values":
        if (weightInit.values.length !== count) {
          throw new RangeError(`parameter "${key}": ${weightInit.values.length} values given, ${count} expected.`);
        }
        return weightInit.values;
    }
  }

  /**
   * Returns the values of a [rows, columns] matrix drawn under `key`, stored
   * as its [columns, rows] transpose. Exporters store a Linear weight this
   * way after constant folding, and keying by the untransposed weight keeps
   * the same function as the untransposed layout for the same seed.
   */
  transposedValues(key: string, rows: number, columns: number, weightInit: WeightInit): Float32Array {
    const values = this.values(key, rows * columns, weightInit);
    return this.mode === "zeros" ? values : transposeMatrix(values, rows, columns);
  }

  private sharedZeros(count: number): Float32Array {
    if (this.zeroBuffer.byteLength < count * 4) this.zeroBuffer = new ArrayBuffer(count * 4);
    return new Float32Array(this.zeroBuffer, 0, count);
  }
}

/** Returns the transpose of a row-major [rows, columns] matrix. */
export function transposeMatrix(values: Float32Array, rows: number, columns: number): Float32Array {
  const result = new Float32Array(values.length);
  for (let row = 0; row < rows; row++) {
    for (let column = 0; column < columns; column++) result[column * rows + row] = values[row * columns + column];
  }
  return result;
}
