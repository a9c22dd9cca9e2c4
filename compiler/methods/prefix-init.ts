import { Random } from "../builder/random";

// Initial values follow PyTorch's defaults for the modules PEFT builds:
// nn.Embedding draws N(0, 1), and nn.Linear draws weight and bias from
// U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5) gives that
// bound for the weight). Each tensor draws from its own stream, keyed by
// its name, so adding a layer never changes another tensor's values.

/** Draws a prefix or embedding of `size` values from N(0, 1). */
export function initialPrefix(seed: number, name: string, size: number): Float32Array {
  const random = new Random(seed, name);
  return Float32Array.from({ length: size }, () => random.normal());
}

/** Draws a Linear layer's weight [out, in] and bias [out] as PyTorch initialises them. */
export function initialLinear(seed: number, name: string, outFeatures: number, inFeatures: number): { weight: Float32Array; bias: Float32Array; init: string } {
  const bound = 1 / Math.sqrt(inFeatures);
  return { weight: uniform(seed, name, outFeatures * inFeatures, bound), bias: uniform(seed, `${name}:bias`, outFeatures, bound), init: describeUniform(bound) };
}

/** Draws a UniPELT gate, Linear(hidden, 1), stored as weight [hidden, 1] for x·w, and bias [1]. */
export function initialGate(seed: number, name: string, hidden: number): { weight: Float32Array; bias: Float32Array; init: string } {
  return initialLinear(seed, name, 1, hidden);
}

function uniform(seed: number, key: string, size: number, bound: number): Float32Array {
  const random = new Random(seed, key);
  return Float32Array.from({ length: size }, () => (2 * random.uniform() - 1) * bound);
}

function describeUniform(bound: number): string {
  const text = Number(bound.toPrecision(6)).toString();
  return `uniform(-${text}, ${text})`;
}
