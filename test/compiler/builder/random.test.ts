import { Random } from "../../../compiler/builder/random";
import { exponential, naturalLog, power } from "../../../compiler/builder/portable-math";

describe("Random", () => {
  test("xoshiro128** matches the reference sequence", () => {
    // Output of the reference C implementation from the state {1, 2, 3, 4}.
    const random = Random.fromState([1, 2, 3, 4]);
    const outputs = Array.from({ length: 6 }, () => random.nextUint32());
    expect(outputs).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  test("seed 0 gives fixed first values", () => {
    const random = new Random(0);
    const outputs = Array.from({ length: 4 }, () => random.nextUint32());
    expect(outputs).toEqual([3781564968, 1944808877, 2340108199, 3500316882]);
  });

  test("seed and key give fixed normal samples", () => {
    const samples = new Float32Array(4);
    new Random(7, "transformer.wte.weight").fillNormal(samples);
    expect(Array.from(samples)).toEqual(FIXED_NORMALS);
  });

  test("same seed and key repeat the stream", () => {
    const first = new Float32Array(1000);
    const second = new Float32Array(1000);
    new Random(3, "h.0.attn.c_attn.weight").fillNormal(first, 0.02);
    new Random(3, "h.0.attn.c_attn.weight").fillNormal(second, 0.02);
    expect(Buffer.from(first.buffer).equals(Buffer.from(second.buffer))).toBe(true);
  });

  test("different keys or seeds give different streams", () => {
    const draw = (seed: number, key: string): number[] => {
      const random = new Random(seed, key);
      return Array.from({ length: 4 }, () => random.nextUint32());
    };
    expect(draw(0, "a.weight")).not.toEqual(draw(0, "b.weight"));
    expect(draw(0, "a.weight")).not.toEqual(draw(1, "a.weight"));
  });

  test("fillNormal continues the normal() stream", () => {
    const single = new Random(5);
    const expected = Array.from({ length: 7 }, () => Math.fround(single.normal()));
    const filled = new Float32Array(7);
    const batched = new Random(5);
    batched.fillNormal(filled.subarray(0, 3));
    batched.fillNormal(filled.subarray(3));
    expect(Array.from(filled)).toEqual(expected);
  });

  test("normal samples have the requested moments", () => {
    const samples = new Float64Array(200_000);
    new Random(11).fillNormal(samples, 2, 0.5);
    const mean = samples.reduce((sum, value) => sum + value, 0) / samples.length;
    const variance = samples.reduce((sum, value) => sum + (value - mean) ** 2, 0) / samples.length;
    // Standard errors for n = 200,000 and sigma = 2: about 0.0045 for the mean, 0.0032 for the std.
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(Math.sqrt(variance) - 2)).toBeLessThan(0.02);
  });

  test("uniform samples stay in range", () => {
    const samples = new Float64Array(10_000);
    new Random(2).fillUniform(samples, -1, 3);
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...samples)).toBeLessThan(3);
  });

  test("invalid seeds are rejected", () => {
    expect(() => new Random(-1)).toThrow(RangeError);
    expect(() => new Random(1.5)).toThrow(RangeError);
    expect(() => Random.fromState([0, 0, 0, 0])).toThrow(RangeError);
  });
});

describe("portable math", () => {
  test("naturalLog matches Math.log", () => {
    for (const x of [1e-300, 1e-12, 0.001, 0.25, 0.5, 0.70710678, 1, 1.5, 2, 10, 12345.678, 1e300]) {
      expect(Math.abs(naturalLog(x) - Math.log(x))).toBeLessThanOrEqual(1e-15 * Math.max(1, Math.abs(Math.log(x))));
    }
  });

  test("exponential matches Math.exp", () => {
    for (const y of [-700, -20, -1, -1e-9, 0, 0.5, 1, 3.3, 50, 700]) {
      expect(Math.abs(exponential(y) - Math.exp(y))).toBeLessThanOrEqual(1e-15 * Math.exp(y));
    }
  });

  test("power matches Math.pow", () => {
    for (const [base, exponent] of [[10000, -0.125], [10000, -0.875], [2, 10], [500000, -0.5]]) {
      expect(Math.abs(power(base, exponent) - Math.pow(base, exponent))).toBeLessThanOrEqual(1e-14 * Math.pow(base, exponent));
    }
  });

  test("naturalLog rejects non-positive input", () => {
    expect(() => naturalLog(0)).toThrow(RangeError);
    expect(() => naturalLog(-1)).toThrow(RangeError);
    expect(() => naturalLog(Infinity)).toThrow(RangeError);
  });
});

// Float32 values of the first four polar-method samples. An independent
// Python implementation of the same seeding and sampling gives the same values.
const FIXED_NORMALS = [0.1616106778383255, 0.2457478642463684, -0.11412336677312851, -1.1354389190673828];
