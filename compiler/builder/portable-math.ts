/**
 * Logarithm, exponential and power computed from +, -, * and / only.
 * ECMAScript defines those as IEEE 754 double operations, so they give the
 * same bits in every engine, whereas it leaves Math.log, Math.exp, Math.pow,
 * Math.sin and Math.cos implementation-approximated, so their last bits may
 * differ between engines and versions. Weights and constants written into
 * fixture files use these functions so the files are reproducible byte for
 * byte.
 *
 * NOTE: callers still use Math.sqrt, which the specification also leaves
 * approximate. This relies on engines returning the correctly rounded IEEE
 * 754 square root, as the x86-64 and arm64 instructions do. The fixture
 * byte-identity tests would fail on an engine that does not.
 */

const LN2 = 0.6931471805599453;
const SQRT_HALF = 0.7071067811865476;
const SQRT_TWO = 1.4142135623730951;
// ln 2 split so that k * LN2_HIGH is exact for |k| < 2^11 (Cody and Waite's argument reduction).
const LN2_HIGH = 6.93147180369123816490e-1;
const LN2_LOW = 1.90821492927058770002e-10;

/**
 * Computes ln(x) for x > 0. The argument is scaled by powers of two (exact)
 * into [sqrt(1/2), sqrt(2)), and ln of the rest comes from the series
 * 2 * atanh(t) with t = (m - 1) / (m + 1), |t| < 0.172, where ten terms
 * reach double precision.
 */
export function naturalLog(x: number): number {
  if (!(x > 0 && x < Infinity)) throw new RangeError(`naturalLog expects a positive finite number, got ${x}.`);
  let mantissa = x;
  let exponent = 0;
  while (mantissa < SQRT_HALF) {
    mantissa *= 2;
    exponent -= 1;
  }
  while (mantissa >= SQRT_TWO) {
    mantissa /= 2;
    exponent += 1;
  }
  const t = (mantissa - 1) / (mantissa + 1);
  const t2 = t * t;
  // Horner's rule for 1 + t2/3 + t2^2/5 + ... + t2^9/19, written out because a loop is markedly slower here.
  const series =
    1 + t2 * (1 / 3 + t2 * (1 / 5 + t2 * (1 / 7 + t2 * (1 / 9 + t2 * (1 / 11 + t2 * (1 / 13 + t2 * (1 / 15 + t2 * (1 / 17 + t2 / 19))))))));
  return exponent * LN2 + 2 * t * series;
}

/**
 * Computes e^y. With y = k * ln 2 + r and |r| <= ln(2) / 2, e^r comes from
 * its Taylor series (18 terms reach double precision) and the factor 2^k is
 * applied by exact doublings.
 */
export function exponential(y: number): number {
  if (Number.isNaN(y)) return NaN;
  if (y > 709.8) return Infinity;
  if (y < -745.2) return 0;
  const k = Math.round(y / LN2);
  const r = y - k * LN2_HIGH - k * LN2_LOW;
  let term = 1;
  let sum = 1;
  for (let n = 1; n <= 18; n++) {
    term = (term * r) / n;
    sum += term;
  }
  const factor = k >= 0 ? 2 : 0.5;
  for (let i = 0; i < Math.abs(k); i++) sum *= factor;
  return sum;
}

/** Computes base^exponent for base > 0. */
export function power(base: number, exponent: number): number {
  return exponential(exponent * naturalLog(base));
}
