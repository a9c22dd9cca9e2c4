import * as ort from "onnxruntime-node";
import type { CompiledArtifacts } from "./artifacts";

/** One element's gradient from grad.onnx next to the slope of eval.onnx's loss there. */
export interface GradientCheck {
  name: string;
  index: number;
  analytic: number;
  numeric: number;
}

/** Elements checked by default: the first, the middle and the last. */
function firstMiddleLast(size: number): number[] {
  return [0, Math.floor(size / 2), size - 1];
}

/**
 * Compares grad.onnx's gradient of every parameter in `names` (default:
 * every manifest parameter) with a five-point central difference of
 * eval.onnx's loss at `indices(size)` of that parameter (default: first,
 * middle and last element). The stencil's truncation error is O(h⁴), so a
 * step large enough to keep float32 rounding small (about 5e-7 of loss
 * noise, times 18 / 12h) still gives an accurate slope. Returns the
 * grad.onnx outputs and one check per element.
 */
export async function centralDifferenceChecks(
  artifacts: CompiledArtifacts,
  params: Record<string, ort.Tensor>,
  batch: Record<string, ort.Tensor>,
  options: { names?: string[]; indices?: (size: number) => number[]; h?: number } = {},
): Promise<{ grads: ort.InferenceSession.OnnxValueMapType; checks: GradientCheck[] }> {
  const names = options.names ?? artifacts.manifest.parameters.map((parameter) => parameter.name);
  const indices = options.indices ?? firstMiddleLast;
  const h = options.h ?? 1e-2;
  const grads = await (await artifacts.session("grad")).run({ ...batch, ...params });
  const evaluate = await artifacts.session("eval");
  const lossWith = async (name: string, index: number, delta: number): Promise<number> => {
    const changed = Float32Array.from(params[name].data as Float32Array);
    changed[index] += delta;
    const outputs = await evaluate.run({ ...batch, ...params, [name]: new ort.Tensor("float32", changed, params[name].dims) });
    return outputs.loss.data[0] as number;
  };

  const checks: GradientCheck[] = [];
  for (const name of names) {
    const grad = grads[`${name}.grad`].data as Float32Array;
    for (const index of indices(grad.length)) {
      const [plus2, plus1, minus1, minus2] = await Promise.all([2 * h, h, -h, -2 * h].map((delta) => lossWith(name, index, delta)));
      checks.push({ name, index, analytic: grad[index], numeric: (-plus2 + 8 * plus1 - 8 * minus1 + minus2) / (12 * h) });
    }
  }
  return { grads, checks };
}

/** Returns the checks whose gradient is off the slope by `absolute` + `relative`·|slope| or more, so `expect(...).toEqual([])` names them. */
export function gradientMismatches(checks: readonly GradientCheck[], absolute: number, relative: number): GradientCheck[] {
  return checks.filter((check) => !(Math.abs(check.analytic - check.numeric) < absolute + relative * Math.abs(check.numeric)));
}

/** Deterministic values in [-amplitude, amplitude) from a linear congruential generator seeded with `seed`. */
export function uniformValues(size: number, seed: number, amplitude: number): Float32Array {
  let state = seed;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32 - 0.5) * 2 * amplitude;
  });
}

/**
 * Copies `params` with new float32 values for the tensors in `names`, in
 * that order: `change` receives the name, the current values and the
 * position in `names`, and returns the new values, or undefined to keep
 * the tensor. Tests use it to move zero-initialized tensors off zero, so
 * that every gradient and every method's effect is non-zero.
 */
export function changedParams(
  params: Record<string, ort.Tensor>,
  names: readonly string[],
  change: (name: string, values: Float32Array, index: number) => Float32Array | undefined,
): Record<string, ort.Tensor> {
  const changed: Record<string, ort.Tensor> = { ...params };
  names.forEach((name, index) => {
    const tensor = params[name];
    const values = change(name, tensor.data as Float32Array, index);
    if (values) changed[name] = new ort.Tensor("float32", values, tensor.dims);
  });
  return changed;
}
