/**
 * Polynomials over dimension names with integer coefficients, the form of
 * every derived dimension (`past_sequence+sequence`, `7*batch_size`). max,
 * min, floordiv, ceildiv and mod of polynomials that do not simplify stay
 * as function atoms (`min(8,past+seq)`). Each polynomial has one canonical
 * text, so equal expressions compare equal as strings, and symbolic.ts
 * parses that text back.
 *
 * Dimension names are assumed non-negative, which lets max/min of
 * `past+seq` and `past` simplify.
 */

/** One monomial: a coefficient times a sorted list of atoms; no atoms means a constant. */
interface Term {
  readonly factors: readonly string[];
  readonly coefficient: number;
}

/** A sum of terms keyed by their factors joined with "*" (the constant has key ""). */
export type Polynomial = ReadonlyMap<string, Term>;

/** Expressions longer than this, or with more terms, are dropped as unknown rather than carried. */
const MAX_TEXT_LENGTH = 160;
const MAX_TERMS = 8;

export function constantPolynomial(value: number): Polynomial {
  return value === 0 ? new Map() : new Map([["", { factors: [], coefficient: value }]]);
}

export function atomPolynomial(atom: string): Polynomial {
  return new Map([[atom, { factors: [atom], coefficient: 1 }]]);
}

function addTerm(terms: Map<string, Term>, factors: readonly string[], coefficient: number): void {
  const key = factors.join("*");
  const sum = (terms.get(key)?.coefficient ?? 0) + coefficient;
  if (sum === 0) terms.delete(key);
  else terms.set(key, { factors, coefficient: sum });
}

export function addPolynomials(a: Polynomial, b: Polynomial, sign = 1): Polynomial {
  const terms = new Map(a);
  for (const term of b.values()) addTerm(terms, term.factors, sign * term.coefficient);
  return terms;
}

export function subtractPolynomials(a: Polynomial, b: Polynomial): Polynomial {
  return addPolynomials(a, b, -1);
}

export function multiplyPolynomials(a: Polynomial, b: Polynomial): Polynomial {
  const terms = new Map<string, Term>();
  for (const left of a.values()) {
    for (const right of b.values()) {
      const factors = [...left.factors, ...right.factors].sort();
      addTerm(terms, factors, left.coefficient * right.coefficient);
    }
  }
  return terms;
}

/** Returns the numeric value of a polynomial without atoms, or undefined. */
export function constantValue(p: Polynomial): number | undefined {
  if (p.size === 0) return 0;
  if (p.size === 1 && p.has("")) return p.get("")!.coefficient;
  return undefined;
}

/** Orders two strings by UTF-16 code units, the same on every locale. */
function compareText(left: string, right: string): number {
  if (left < right) return -1;
  if (left > right) return 1;
  return 0;
}

/** Orders terms by degree, then by factor text; used to pick leading terms in division. */
function compareTerms(a: Term, b: Term): number {
  if (a.factors.length !== b.factors.length) return a.factors.length - b.factors.length;
  return compareText(a.factors.join("*"), b.factors.join("*"));
}

function leadingTerm(p: Polynomial): Term | undefined {
  let best: Term | undefined;
  for (const term of p.values()) if (!best || compareTerms(term, best) > 0) best = term;
  return best;
}

/** Divides monomial `a` by monomial `b`; undefined unless the factors and the coefficient divide exactly. */
function divideTerm(a: Term, b: Term): Term | undefined {
  if (a.coefficient % b.coefficient !== 0) return undefined;
  const remaining = [...a.factors];
  for (const factor of b.factors) {
    const at = remaining.indexOf(factor);
    if (at < 0) return undefined;
    remaining.splice(at, 1);
  }
  return { factors: remaining, coefficient: a.coefficient / b.coefficient };
}

/**
 * Returns a / b when b divides a with an integer-coefficient quotient, by
 * multivariate long division on the leading terms. Returns undefined otherwise.
 */
export function divideExact(a: Polynomial, b: Polynomial): Polynomial | undefined {
  const divisorLead = leadingTerm(b);
  if (!divisorLead) return undefined;
  let remainder: Polynomial = a;
  let quotient: Polynomial = new Map();
  for (let step = 0; remainder.size > 0; step++) {
    if (step > 4 * MAX_TERMS) return undefined;
    const lead = leadingTerm(remainder)!;
    const factor = divideTerm(lead, divisorLead);
    if (!factor) return undefined;
    const factorPolynomial: Polynomial = new Map([[factor.factors.join("*"), factor]]);
    quotient = addPolynomials(quotient, factorPolynomial);
    remainder = subtractPolynomials(remainder, multiplyPolynomials(factorPolynomial, b));
  }
  return quotient;
}

/**
 * True when an atom is never negative: a dimension name, or max, min,
 * floordiv, ceildiv or mod of operands that make it so.
 */
function isNonNegativeAtom(atom: string): boolean {
  const call = functionCalls.get(atom);
  if (!call) return true;
  const [a, b] = call.args.map(signOf);
  switch (call.name) {
    case "max":
      return a > 0 || b > 0;
    case "mod":
      // The remainder takes the divisor's sign.
      return b > 0;
    default:
      return a > 0 && b > 0;
  }
}

/** Returns 1 when p >= 0 for every non-negative binding of its names, -1 when p <= 0, 0 when unknown. */
export function signOf(p: Polynomial): -1 | 0 | 1 {
  const terms = [...p.values()];
  if (!terms.every((term) => term.factors.every(isNonNegativeAtom))) return 0;
  if (terms.every((term) => term.coefficient >= 0)) return 1;
  if (terms.every((term) => term.coefficient <= 0)) return -1;
  return 0;
}

/** A function atom taken apart: its name and argument polynomials. */
export interface FunctionCall {
  name: string;
  args: Polynomial[];
}

/** Returns the call when `p` is exactly one function atom such as `min(8,past)`; undefined otherwise. */
export function functionCallOf(p: Polynomial): FunctionCall | undefined {
  if (p.size !== 1) return undefined;
  const term = [...p.values()][0];
  return term.coefficient === 1 && term.factors.length === 1 ? functionCalls.get(term.factors[0]) : undefined;
}

/** Every function atom created so far, by its text; atoms are only made by functionAtom, so each is here. */
const functionCalls = new Map<string, FunctionCall>();

function functionAtom(name: string, args: Polynomial[]): Polynomial {
  const atom = `${name}(${args.map(formatPolynomial).join(",")})`;
  if (!functionCalls.has(atom)) functionCalls.set(atom, { name, args });
  return atomPolynomial(atom);
}

export function maxPolynomial(a: Polynomial, b: Polynomial): Polynomial {
  const sign = signOf(subtractPolynomials(a, b));
  if (sign > 0) return a;
  if (sign < 0) return b;
  return functionAtom("max", [a, b].sort(byText));
}

export function minPolynomial(a: Polynomial, b: Polynomial): Polynomial {
  const sign = signOf(subtractPolynomials(a, b));
  if (sign > 0) return b;
  if (sign < 0) return a;
  return functionAtom("min", [a, b].sort(byText));
}

/** Floor division as ONNX integer Div computes it for non-negative operands. */
export function floorDivPolynomial(a: Polynomial, b: Polynomial): Polynomial {
  const numerator = constantValue(a);
  const denominator = constantValue(b);
  if (numerator !== undefined && denominator !== undefined && denominator !== 0) {
    return constantPolynomial(Math.floor(numerator / denominator));
  }
  return divideExact(a, b) ?? functionAtom("floordiv", [a, b]);
}

export function ceilDivPolynomial(a: Polynomial, b: Polynomial): Polynomial {
  const numerator = constantValue(a);
  const denominator = constantValue(b);
  if (numerator !== undefined && denominator !== undefined && denominator !== 0) {
    return constantPolynomial(Math.ceil(numerator / denominator));
  }
  return divideExact(a, b) ?? functionAtom("ceildiv", [a, b]);
}

/** Remainder with the sign of the divisor, as ONNX Mod with fmod=0 computes it. */
export function modPolynomial(a: Polynomial, b: Polynomial): Polynomial {
  const numerator = constantValue(a);
  const denominator = constantValue(b);
  if (numerator !== undefined && denominator !== undefined && denominator !== 0) {
    return constantPolynomial(numerator - denominator * Math.floor(numerator / denominator));
  }
  if (divideExact(a, b)) return constantPolynomial(0);
  return functionAtom("mod", [a, b]);
}

function byText(a: Polynomial, b: Polynomial): number {
  return compareText(formatPolynomial(a), formatPolynomial(b));
}

function formatTerm(term: Term): string {
  if (term.factors.length === 0) return String(Math.abs(term.coefficient));
  const magnitude = Math.abs(term.coefficient);
  const product = term.factors.join("*");
  return magnitude === 1 ? product : `${magnitude}*${product}`;
}

/** Orders terms for printing: positive name terms, then negative ones, each in key order, then the constant. */
function printOrder(term: Term): [number, string] {
  if (term.factors.length === 0) return [2, ""];
  return [term.coefficient > 0 ? 0 : 1, term.factors.join("*")];
}

/** Writes the canonical text, such as `past_sequence+sequence` or `min(8,past+seq)-min(8,past)`. */
export function formatPolynomial(p: Polynomial): string {
  const terms = [...p.values()].sort((a, b) => {
    const [groupA, keyA] = printOrder(a);
    const [groupB, keyB] = printOrder(b);
    if (groupA !== groupB) return groupA - groupB;
    return compareText(keyA, keyB);
  });
  if (terms.length === 0) return "0";
  let text = "";
  terms.forEach((term, i) => {
    if (term.coefficient < 0) text += "-";
    else if (i > 0) text += "+";
    text += formatTerm(term);
  });
  return text;
}

/** True when the polynomial is small enough to carry as a dimension. */
export function isCarriable(p: Polynomial): boolean {
  return p.size <= MAX_TERMS && formatPolynomial(p).length <= MAX_TEXT_LENGTH;
}

