/**
 * float16 (IEEE 754 binary16) and bfloat16 conversions. Encoding rounds to
 * nearest even, as PyTorch and onnxruntime do, so values round-trip through
 * either library bit for bit.
 */

const scratch = new DataView(new ArrayBuffer(4));

function float32Bits(value: number): number {
  scratch.setFloat32(0, value, true);
  return scratch.getUint32(0, true);
}

function bitsToFloat32(bits: number): number {
  scratch.setUint32(0, bits >>> 0, true);
  return scratch.getFloat32(0, true);
}

export function float16ToFloat32(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >> 10) & 0x1f;
  const fraction = half & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

export function float32ToFloat16(value: number): number {
  const bits = float32Bits(value);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let fraction = bits & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (fraction ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half: shift the implicit leading one into the fraction.
    if (halfExponent < -10) return sign;
    fraction |= 0x800000;
    const shift = 14 - halfExponent;
    const rounded = roundShift(fraction, shift);
    return sign | rounded;
  }
  const rounded = roundShift(fraction, 13);
  // A carry out of the fraction bumps the exponent, which is the right result.
  return (sign | (halfExponent << 10)) + rounded;
}

/** Shifts right by `shift` bits, rounding to nearest with ties to even. */
function roundShift(value: number, shift: number): number {
  const truncated = value >>> shift;
  const remainder = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (remainder > half || (remainder === half && (truncated & 1) === 1)) return truncated + 1;
  return truncated;
}

export function bfloat16ToFloat32(bits: number): number {
  return bitsToFloat32(bits << 16);
}

export function float32ToBfloat16(value: number): number {
  const bits = float32Bits(value);
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return ((bits >>> 16) | 0x40) & 0xffff;
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}
