import * as ort from "onnxruntime-node";

/** Opens a CPU session that logs errors only. */
export function openSession(modelPath: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(modelPath, { logSeverityLevel: 3, graphOptimizationLevel: "disabled" });
}

/**
 * Sizes for symbolic dims, chosen by name so that related dims agree:
 * a "total" length is past + current, as cached decoders require.
 */
export function symbolicSize(name: string): number {
  const lower = name.toLowerCase();
  if (lower.includes("batch")) return 2;
  if (lower.includes("total") || lower.includes("plus") || lower.includes("+")) return 5;
  if (lower.includes("past") || lower.includes("cache")) return 2;
  return 3;
}

/** Values for scalar control inputs of generation graphs (BeamSearch). */
const CONTROL_INPUTS: Record<string, number> = {
  max_length: 8,
  min_length: 1,
  num_beams: 2,
  num_return_sequences: 1,
  length_penalty: 1,
  repetition_penalty: 1,
};

/**
 * Builds deterministic feeds for every input a session declares. `sizes`
 * overrides the size picked for a named symbolic dim.
 */
export function makeFeeds(session: ort.InferenceSession, sizes: Record<string, number> = {}): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  let seed = 7;
  const next = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  for (const input of session.inputMetadata) {
    if (!input.isTensor) continue;
    const dims = input.shape.map((dim) => (typeof dim === "number" && dim >= 0 ? dim : sizes[String(dim)] ?? symbolicSize(String(dim))));
    const size = dims.reduce((product, dim) => product * dim, 1);
    const control = CONTROL_INPUTS[input.name];
    switch (input.type) {
      case "float32":
        feeds[input.name] = new ort.Tensor("float32", Float32Array.from({ length: size }, () => control ?? next()), dims);
        break;
      case "float16":
        feeds[input.name] = new ort.Tensor("float16", Uint16Array.from({ length: size }, () => 0x3c00), dims);
        break;
      case "int64":
        feeds[input.name] = new ort.Tensor("int64", BigInt64Array.from({ length: size }, () => BigInt(control ?? 1)), dims);
        break;
      case "int32":
        feeds[input.name] = new ort.Tensor("int32", Int32Array.from({ length: size }, () => control ?? 1), dims);
        break;
      case "bool":
        feeds[input.name] = new ort.Tensor("bool", Uint8Array.from({ length: size }, () => 1), dims);
        break;
      default:
        throw new Error(`no feed rule for input ${input.name} of type ${input.type}`);
    }
  }
  return feeds;
}

/** Largest absolute difference between two output maps, by name; NaN positions must match. */
export function maxAbsDifference(a: ort.InferenceSession.OnnxValueMapType, b: ort.InferenceSession.OnnxValueMapType): number {
  let worst = 0;
  for (const name of Object.keys(a)) {
    const left = a[name] as ort.Tensor;
    const right = b[name] as ort.Tensor;
    if (!right || left.dims.join() !== right.dims.join()) return Infinity;
    const x = left.data as ArrayLike<number | bigint>;
    const y = right.data as ArrayLike<number | bigint>;
    for (let i = 0; i < x.length; i++) {
      const difference = Math.abs(Number(x[i]) - Number(y[i]));
      if (Number.isNaN(difference)) {
        if (!(Number.isNaN(Number(x[i])) && Number.isNaN(Number(y[i])))) return Infinity;
      } else worst = Math.max(worst, difference);
    }
  }
  return worst;
}
