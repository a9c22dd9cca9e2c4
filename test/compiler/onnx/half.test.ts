import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from "../../../compiler/onnx/half";

describe("float16", () => {
  it.each([
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [2 ** -24, 0x0001],
    [2 ** -14, 0x0400],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [1e6, 0x7c00],
  ])("encodes %p as %p", (value, bits) => {
    expect(float32ToFloat16(value)).toBe(bits);
  });

  it("rounds ties to even", () => {
    // 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): even is 1.
    expect(float32ToFloat16(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9: rounds up.
    expect(float32ToFloat16(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it("encodes NaN as a quiet NaN", () => {
    expect(Number.isNaN(float16ToFloat32(float32ToFloat16(NaN)))).toBe(true);
  });

  it("round-trips every finite half", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const exponent = (bits >> 10) & 0x1f;
      if (exponent === 0x1f) continue;
      expect(float32ToFloat16(float16ToFloat32(bits))).toBe(bits);
    }
  });
});

describe("bfloat16", () => {
  it.each([
    [1, 0x3f80],
    [-1, 0xbf80],
    [0, 0x0000],
    [Infinity, 0x7f80],
  ])("encodes %p as %p", (value, bits) => {
    expect(float32ToBfloat16(value)).toBe(bits);
  });

  it("rounds to nearest even", () => {
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: even mantissa is 1.
    expect(float32ToBfloat16(1 + 2 ** -8)).toBe(0x3f80);
    expect(float32ToBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });

  it("keeps NaN a NaN", () => {
    expect(Number.isNaN(bfloat16ToFloat32(float32ToBfloat16(NaN)))).toBe(true);
  });

  it("decodes exactly", () => {
    expect(bfloat16ToFloat32(0x4049)).toBeCloseTo(3.140625, 10);
  });
});
