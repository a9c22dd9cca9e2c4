import {
  Polynomial,
  addPolynomials,
  atomPolynomial,
  ceilDivPolynomial,
  constantPolynomial,
  constantValue,
  floorDivPolynomial,
  maxPolynomial,
  minPolynomial,
  modPolynomial,
  multiplyPolynomials,
  subtractPolynomials,
} from "./polynomial";

/**
 * Reads and evaluates dimension text: a plain name (`batch`), a derived
 * dimension in the canonical form polynomial.ts writes, or a declared
 * dim_param written as an expression (`cache+seq`, `past_sequence +
 * sequence`), with the usual precedence.
 * NOTE: a declared name that happens to fit the grammar, like `seq-len`,
 * reads as a difference of two names, and some exporters write products
 * of sums without parentheses (`batch*cache+seq` for batch*(cache+seq)),
 * which reads differently from what they meant. Declared names are only
 * compared and kept, never rewritten, so such a name stays as written.
 */

const FUNCTIONS = new Set(["max", "min", "floordiv", "ceildiv", "mod"]);

type Expression =
  | { kind: "number"; value: number }
  | { kind: "name"; name: string }
  | { kind: "binary"; operator: "+" | "-" | "*"; left: Expression; right: Expression }
  | { kind: "negate"; operand: Expression }
  | { kind: "call"; name: string; args: Expression[] };

const TOKEN = /\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_.]*)|([-+*(),]))/y;

function tokenize(text: string): string[] | undefined {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    if (/^\s*$/.test(text.slice(TOKEN.lastIndex))) break;
    const match = TOKEN.exec(text);
    if (!match) return undefined;
    tokens.push(match[1] ?? match[2] ?? match[3]);
  }
  return tokens;
}

class Parser {
  private at = 0;

  constructor(private readonly tokens: string[]) {}

  parseAll(): Expression | undefined {
    const expression = this.sum();
    return expression && this.at === this.tokens.length ? expression : undefined;
  }

  private peek(): string | undefined {
    return this.tokens[this.at];
  }

  private sum(): Expression | undefined {
    let left = this.product();
    while (left && (this.peek() === "+" || this.peek() === "-")) {
      const operator = this.tokens[this.at++] as "+" | "-";
      const right = this.product();
      if (!right) return undefined;
      left = { kind: "binary", operator, left, right };
    }
    return left;
  }

  private product(): Expression | undefined {
    let left = this.unary();
    while (left && this.peek() === "*") {
      this.at++;
      const right = this.unary();
      if (!right) return undefined;
      left = { kind: "binary", operator: "*", left, right };
    }
    return left;
  }

  private unary(): Expression | undefined {
    if (this.peek() !== "-") return this.primary();
    this.at++;
    const operand = this.unary();
    return operand && { kind: "negate", operand };
  }

  private primary(): Expression | undefined {
    const token = this.tokens[this.at++];
    if (token === undefined) return undefined;
    if (/^\d+$/.test(token)) return { kind: "number", value: Number(token) };
    if (token === "(") {
      const inner = this.sum();
      return inner && this.tokens[this.at++] === ")" ? inner : undefined;
    }
    if (!/^[A-Za-z_]/.test(token)) return undefined;
    if (this.peek() !== "(") return { kind: "name", name: token };
    return this.call(token);
  }

  private call(name: string): Expression | undefined {
    if (!FUNCTIONS.has(name)) return undefined;
    this.at++;
    const args: Expression[] = [];
    for (;;) {
      const arg = this.sum();
      if (!arg) return undefined;
      args.push(arg);
      const next = this.tokens[this.at++];
      if (next === ")") break;
      if (next !== ",") return undefined;
    }
    return args.length === 2 ? { kind: "call", name, args } : undefined;
  }
}

function parseExpression(text: string): Expression | undefined {
  const tokens = tokenize(text);
  return tokens && tokens.length > 0 ? new Parser(tokens).parseAll() : undefined;
}

function toPolynomial(expression: Expression): Polynomial {
  switch (expression.kind) {
    case "number":
      return constantPolynomial(expression.value);
    case "name":
      return atomPolynomial(expression.name);
    case "negate":
      return subtractPolynomials(new Map(), toPolynomial(expression.operand));
    case "binary": {
      const left = toPolynomial(expression.left);
      const right = toPolynomial(expression.right);
      if (expression.operator === "+") return addPolynomials(left, right);
      if (expression.operator === "-") return subtractPolynomials(left, right);
      return multiplyPolynomials(left, right);
    }
    case "call":
      return applyFunction(expression.name, toPolynomial(expression.args[0]), toPolynomial(expression.args[1]));
  }
}

function applyFunction(name: string, a: Polynomial, b: Polynomial): Polynomial {
  switch (name) {
    case "max":
      return maxPolynomial(a, b);
    case "min":
      return minPolynomial(a, b);
    case "floordiv":
      return floorDivPolynomial(a, b);
    case "ceildiv":
      return ceilDivPolynomial(a, b);
    default:
      return modPolynomial(a, b);
  }
}

const parsed = new Map<string, Polynomial>();

/**
 * Reads a dimension name or expression. Text outside the grammar (names
 * with other characters) becomes a single atom, so every name has a polynomial.
 */
export function parseDimension(text: string): Polynomial {
  let result = parsed.get(text);
  if (!result) {
    const expression = parseExpression(text);
    result = expression ? toPolynomial(expression) : atomPolynomial(text);
    parsed.set(text, result);
  }
  return result;
}

function evaluateExpression(expression: Expression, bindings: ReadonlyMap<string, number>): number {
  switch (expression.kind) {
    case "number":
      return expression.value;
    case "name": {
      const value = bindings.get(expression.name);
      if (value === undefined) throw new Error(`no value is bound to dimension "${expression.name}"`);
      return value;
    }
    case "negate":
      return -evaluateExpression(expression.operand, bindings);
    case "binary": {
      const left = evaluateExpression(expression.left, bindings);
      const right = evaluateExpression(expression.right, bindings);
      if (expression.operator === "+") return left + right;
      if (expression.operator === "-") return left - right;
      return left * right;
    }
    case "call": {
      const a = evaluateExpression(expression.args[0], bindings);
      const b = evaluateExpression(expression.args[1], bindings);
      return constantValue(applyFunction(expression.name, constantPolynomial(a), constantPolynomial(b)))!;
    }
  }
}

/**
 * Evaluates a symbolic dimension with numbers bound to its names. Throws
 * when a name has no binding. A text outside the grammar is looked up whole.
 */
export function evaluateDimension(text: string, bindings: ReadonlyMap<string, number>): number {
  const expression = parseExpression(text);
  if (!expression) {
    const value = bindings.get(text);
    if (value === undefined) throw new Error(`no value is bound to dimension "${text}"`);
    return value;
  }
  return evaluateExpression(expression, bindings);
}
