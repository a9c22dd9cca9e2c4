import { Random } from "../builder/random";
import type { LoraInit } from "../dsl/lora";

/**
 * Draws LoRA's A, stored [rank, in] as PEFT stores `lora_A.weight`.
 * `kaiming` matches PyTorch's `kaiming_uniform_(a=sqrt(5))` on that shape:
 * the gain sqrt(2 / (1 + 5)) and fan-in `in` give the bound 1 / sqrt(in).
 * `gaussian` matches PEFT's `normal_(std=1 / r)`. Each tensor draws from its
 * own stream, keyed by its name, so adding a module never changes the values
 * of another.
 */
export function initialLoraA(init: LoraInit, rank: number, inFeatures: number, seed: number, key: string): Float32Array {
  const random = new Random(seed, key);
  const values = new Float32Array(rank * inFeatures);
  if (init === "kaiming") {
    const bound = 1 / Math.sqrt(inFeatures);
    for (let i = 0; i < values.length; i++) values[i] = (2 * random.uniform() - 1) * bound;
  } else {
    const std = 1 / rank;
    for (let i = 0; i < values.length; i++) values[i] = random.normal() * std;
  }
  return values;
}

/** Describes an initialisation for the manifest's parameter table. */
export function describeLoraInit(init: LoraInit, rank: number, inFeatures: number): string {
  return init === "kaiming" ? `kaiming_uniform(a=sqrt(5)): U(-${formatNumber(1 / Math.sqrt(inFeatures))}, ${formatNumber(1 / Math.sqrt(inFeatures))})` : `normal(std=1/${rank})`;
}

function formatNumber(value: number): string {
  return Number(value.toPrecision(6)).toString();
}
