/**
 * Seeded pseudo-random numbers for model weights.
 *
 * The generator is xoshiro128** (Blackman and Vigna, 2018), seeded through
 * SplitMix64 as its authors recommend. Normal samples use the Marsaglia
 * polar method with the logarithm from portable-math.ts, so the same seed
 * gives the same bits on every machine (see the Math.sqrt note there).
 */

import { naturalLog } from "./portable-math";

const TWO_POW_32 = 4294967296;
const MASK_64 = (1n << 64n) - 1n;

/** A stream of pseudo-random numbers. The same seed and key always give the same stream. */
export class Random {
  // The four state words live in a typed array because V8 keeps integers
  // wider than 31 bits in object fields as heap numbers. With fields, 160M
  // draws took 2.2 s instead of 0.5 s (Node 20, one core of an AMD EPYC).
  private readonly state = new Int32Array(4);
  private spareNormal: number | undefined;

  /**
   * Creates a stream from `seed` (a non-negative safe integer) and an
   * optional `key`, so each weight can draw from its own stream and keep its
   * values when other weights are added or built in another order.
   */
  constructor(seed: number, key = "") {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`invalid random seed ${seed}: expected a non-negative safe integer.`);
    }
    let state = BigInt(seed) ^ fnv1a64(key);
    const words: number[] = [];
    for (let i = 0; i < 2; i++) {
      state = (state + 0x9e3779b97f4a7c15n) & MASK_64;
      const mixed = splitMix64(state);
      words.push(Number(mixed & 0xffffffffn), Number(mixed >> 32n));
    }
    this.state.set(words);
    // xoshiro's state must not be all zero. SplitMix64 output makes that practically impossible, but guard anyway.
    if (words.every((word) => word === 0)) this.state[0] = 1;
  }

  /**
   * Creates a stream from four raw 32-bit state words, for checking the
   * generator against the reference implementation's output.
   */
  static fromState(words: readonly [number, number, number, number]): Random {
    if (words.every((word) => word === 0)) throw new RangeError("invalid xoshiro128** state: it must not be all zero.");
    const random = new Random(0);
    random.state.set(words);
    return random;
  }

  /** Returns the next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const state = this.state;
    const result = Math.imul(rotateLeft(Math.imul(state[1], 5), 7), 9) >>> 0;
    const shifted = state[1] << 9;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= shifted;
    state[3] = rotateLeft(state[3], 11);
    return result;
  }

  /** Returns a uniform sample from [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** Returns a sample from the standard normal distribution. */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const spare = this.spareNormal;
      this.spareNormal = undefined;
      return spare;
    }
    for (;;) {
      const x = (2 * this.nextUint32()) / TWO_POW_32 - 1;
      const y = (2 * this.nextUint32()) / TWO_POW_32 - 1;
      const radiusSquared = x * x + y * y;
      if (radiusSquared >= 1 || radiusSquared === 0) continue;
      const factor = Math.sqrt((-2 * naturalLog(radiusSquared)) / radiusSquared);
      this.spareNormal = y * factor;
      return x * factor;
    }
  }

  /** Fills `out` with normal samples of mean `mean` and standard deviation `std`. */
  fillNormal(out: Float32Array | Float64Array, std = 1, mean = 0): void {
    // Same draws as calling normal() out.length times, with the pair loop inlined for speed.
    let i = 0;
    if (this.spareNormal !== undefined && out.length > 0) out[i++] = mean + std * this.normal();
    while (i < out.length) {
      const x = (2 * this.nextUint32()) / TWO_POW_32 - 1;
      const y = (2 * this.nextUint32()) / TWO_POW_32 - 1;
      const radiusSquared = x * x + y * y;
      if (radiusSquared >= 1 || radiusSquared === 0) continue;
      const factor = Math.sqrt((-2 * naturalLog(radiusSquared)) / radiusSquared);
      out[i++] = mean + std * (x * factor);
      if (i < out.length) out[i++] = mean + std * (y * factor);
      else this.spareNormal = y * factor;
    }
  }

  /** Fills `out` with uniform samples from [low, high). */
  fillUniform(out: Float32Array | Float64Array, low = 0, high = 1): void {
    const width = high - low;
    for (let i = 0; i < out.length; i++) out[i] = low + width * this.uniform();
  }
}

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

/** SplitMix64's output function (Steele, Lea and Flood, 2014) on a 64-bit state. */
function splitMix64(state: bigint): bigint {
  let z = state;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK_64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK_64;
  return z ^ (z >> 31n);
}

/** 64-bit FNV-1a hash of the key's UTF-8 bytes. */
function fnv1a64(key: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(key)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & MASK_64;
  }
  return hash;
}
