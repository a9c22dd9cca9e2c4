import { Dim, formatShape } from "../types";
import {
  Polynomial,
  addPolynomials,
  ceilDivPolynomial,
  constantPolynomial,
  constantValue,
  divideExact,
  floorDivPolynomial,
  formatPolynomial,
  functionCallOf,
  isCarriable,
  maxPolynomial,
  minPolynomial,
  modPolynomial,
  multiplyPolynomials,
  signOf,
  subtractPolynomials,
} from "./polynomial";
import { parseDimension } from "./symbolic";

/**
 * Dimension arithmetic on the IR's Dim: numbers stay numbers, symbolic names
 * combine into canonical derived names (see symbolic.ts), and anything
 * involving an unknown (null) dimension is unknown.
 */

export function isKnownDim(dim: Dim | undefined): dim is number | string {
  return dim !== null && dim !== undefined;
}

export function dimPolynomial(dim: Dim): Polynomial | undefined {
  if (dim === null) return undefined;
  return typeof dim === "number" ? constantPolynomial(dim) : parseDimension(dim);
}

/** Converts back to a Dim: a number when constant, canonical text when small enough, else unknown. */
export function dimFromPolynomial(p: Polynomial): Dim {
  const value = constantValue(p);
  if (value !== undefined) return value;
  return isCarriable(p) ? formatPolynomial(p) : null;
}

/** Compares two dimensions by value: `past + seq` equals `seq+past`. */
export function sameDim(a: Dim, b: Dim): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  if (typeof a === "number" && typeof b === "number") return false;
  return formatPolynomial(dimPolynomial(a)!) === formatPolynomial(dimPolynomial(b)!);
}

export function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((dim, i) => sameDim(dim, b[i]));
}

type PolynomialOperation = (a: Polynomial, b: Polynomial) => Polynomial | undefined;

/**
 * Applies an operation to two dimensions: directly on two numbers (a NaN or
 * infinite result means unknown), through polynomials when a name is
 * involved. Non-integer numbers mixed with names give unknown, because
 * derived names carry integer coefficients only.
 */
function combine(a: Dim, b: Dim, numeric: (x: number, y: number) => number, symbolic: PolynomialOperation): Dim {
  if (a === null || b === null) return null;
  if (typeof a === "number" && typeof b === "number") {
    const value = numeric(a, b);
    return Number.isFinite(value) ? value : null;
  }
  if (!isIntegerOrName(a) || !isIntegerOrName(b)) return null;
  const result = symbolic(dimPolynomial(a)!, dimPolynomial(b)!);
  return result ? dimFromPolynomial(result) : null;
}

function isIntegerOrName(dim: number | string): boolean {
  return typeof dim === "string" || Number.isInteger(dim);
}

export function addDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => x + y, addPolynomials);
}

export function subtractDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => x - y, subtractPolynomials);
}

export function multiplyDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => x * y, multiplyPolynomials);
}

/** Exact division; unknown when b does not divide a. */
export function divideDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => (y !== 0 && x % y === 0 ? x / y : NaN), divideExact);
}

/** Integer division rounding down, as shape arithmetic on non-negative sizes uses it. */
export function floorDivideDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => Math.floor(x / y), floorDivPolynomial);
}

export function ceilDivideDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => Math.ceil(x / y), ceilDivPolynomial);
}

export function modDims(a: Dim, b: Dim): Dim {
  return combine(a, b, (x, y) => x - y * Math.floor(x / y), modPolynomial);
}

export function maxDims(a: Dim, b: Dim): Dim {
  const order = compareDims(a, b);
  if (order === "greater" || order === "greater-or-equal" || order === "equal") return a;
  if (order === "less" || order === "less-or-equal") return b;
  return combine(a, b, Math.max, maxPolynomial);
}

export function minDims(a: Dim, b: Dim): Dim {
  const order = compareDims(a, b);
  if (order === "greater" || order === "greater-or-equal" || order === "equal") return b;
  if (order === "less" || order === "less-or-equal") return a;
  return combine(a, b, Math.min, minPolynomial);
}

export function negateDim(a: Dim): Dim {
  return subtractDims(0, a);
}

export function productOfDims(dims: readonly Dim[]): Dim {
  return dims.reduce<Dim>((product, dim) => multiplyDims(product, dim), 1);
}

/**
 * Broadcasts one aligned position of several shapes. Size 1 stretches. A
 * number other than 1 wins over names, because a valid model makes them
 * equal to it or 1. Two different names, or a name and an unknown, give
 * unknown because either one may be the 1. Two different numbers other
 * than 1 give "mismatch".
 */
export function broadcastDim(dims: readonly Dim[]): Dim | "mismatch" {
  const rest = dims.filter((dim) => dim !== 1);
  if (rest.length === 0) return 1;
  const numbers = [...new Set(rest.filter((dim): dim is number => typeof dim === "number"))];
  if (numbers.length > 1) return "mismatch";
  if (numbers.length === 1) return numbers[0];
  if (rest.includes(null)) return null;
  const distinct = rest.filter((dim, i) => rest.findIndex((other) => sameDim(other, dim)) === i);
  if (distinct.length === 1) return distinct[0];
  if (distinct.length === 2) return clampedPair(distinct[0], distinct[1]) ?? null;
  return null;
}

/**
 * Broadcasts `min(c, b)` with `b` for a positive number c: the two must be
 * equal or one of them 1, and either way the result is b. This is how an
 * exporter's clamp of a position table to the input length lines up with
 * that length.
 */
function clampedPair(a: Dim, b: Dim): Dim | undefined {
  for (const [clamped, other] of [[a, b], [b, a]]) {
    const call = functionCallOf(dimPolynomial(clamped)!);
    if (call?.name !== "min") continue;
    const [first, second] = call.args.map((arg) => dimFromPolynomial(arg));
    if ((typeof first === "number" && first > 0 && sameDim(second, other)) || (typeof second === "number" && second > 0 && sameDim(first, other))) return other;
  }
  return undefined;
}

/** Multidirectional (numpy) broadcasting; returns an error text on incompatible numbers. */
export function broadcastShapes(shapes: readonly (readonly Dim[])[]): Dim[] | string {
  const rank = Math.max(0, ...shapes.map((shape) => shape.length));
  const result: Dim[] = [];
  for (let position = 0; position < rank; position++) {
    // A shorter shape is padded with 1s on the left. An unknown (null) dimension stays unknown.
    const column = shapes.map((shape) => {
      const index = shape.length - rank + position;
      return index < 0 ? 1 : shape[index];
    });
    const dim = broadcastDim(column);
    if (dim === "mismatch") {
      return `shapes ${shapes.map((shape) => formatShape([...shape])).join(", ")} cannot be broadcast (axis ${position} of the result)`;
    }
    result.push(dim);
  }
  return result;
}

/**
 * Exporters write "no limit" (a slice to the end, a clamp that never
 * applies) as INT32_MAX or INT64_MAX. Numbers this large or larger compare
 * as greater than any symbolic size.
 * NOTE: a single axis of 2^31 elements or more would compare wrongly.
 */
export const UNBOUNDED = 2 ** 31 - 1;

/** The known order of two dimensions (or shape values). */
export type DimOrder = "less" | "less-or-equal" | "equal" | "greater-or-equal" | "greater" | "unknown";

/**
 * Compares two values using only what holds for every non-negative binding
 * of their names: `seq+1` is greater than `seq`, and `past+seq` is
 * greater than or equal to `past`. See UNBOUNDED for very large numbers.
 */
export function compareDims(a: Dim, b: Dim): DimOrder {
  if (a === null || b === null) return "unknown";
  if (typeof a === "number" && typeof b === "number") {
    if (a < b) return "less";
    return a > b ? "greater" : "equal";
  }
  if (typeof a === "number" && Math.abs(a) >= UNBOUNDED) return a > 0 ? "greater" : "less";
  if (typeof b === "number" && Math.abs(b) >= UNBOUNDED) return b > 0 ? "less" : "greater";
  if (!isIntegerOrName(a) || !isIntegerOrName(b)) return "unknown";
  const difference = subtractPolynomials(dimPolynomial(a)!, dimPolynomial(b)!);
  const constant = difference.get("")?.coefficient ?? 0;
  if (difference.size === 0) return "equal";
  const sign = signOf(difference);
  if (sign > 0) return constant > 0 ? "greater" : "greater-or-equal";
  if (sign < 0) return constant < 0 ? "less" : "less-or-equal";
  return "unknown";
}
