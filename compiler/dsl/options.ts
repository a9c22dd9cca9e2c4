import type { SourceSite } from "./site";
import { describeValue } from "./selector";
import { SpecError } from "./spec-error";

/**
 * Checks option objects at run time with the same rules the types state, so
 * a spec written in plain JavaScript, or one that casts, still gets an error
 * that names the option and the allowed values.
 */
export class OptionReader {
  constructor(
    /** The DSL function, for messages: `lora`, `adamw`, `defineSpec`. */
    readonly owner: string,
    readonly site: SourceSite | undefined,
    /** Property path of these options inside the call's argument. */
    readonly prefix: readonly string[] = [],
  ) {}

  fail(option: string | readonly string[], reason: string): never {
    const path = [...this.prefix, ...(typeof option === "string" ? [option] : option)];
    throw new SpecError("E_SPEC_OPTION", `${this.owner}: option "${path.join(".")}" ${reason}`, this.site, path);
  }

  /** Rejects anything but a plain object, and keys outside `allowed`. */
  object(value: unknown, allowed: readonly string[], what = "options"): Record<string, unknown> {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      const where = this.prefix.length > 0 ? `option "${this.prefix.join(".")}"` : what;
      throw new SpecError("E_SPEC_OPTION", `${this.owner}: ${where} must be an object; got ${describeValue(value)}.`, this.site, this.prefix);
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!allowed.includes(key)) this.fail(key, `is unknown; allowed options: ${allowed.join(", ")}.`);
    }
    return record;
  }

  number(record: Record<string, unknown>, key: string, rule: NumberRule, fallback: number): number;
  number(record: Record<string, unknown>, key: string, rule: NumberRule, fallback?: number): number | undefined;
  number(record: Record<string, unknown>, key: string, rule: NumberRule, fallback?: number): number | undefined {
    const value = record[key];
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isFinite(value)) this.fail(key, `must be a finite number (${describeRule(rule)}); got ${describeValue(value)}.`);
    // Numbers become float32 constants of the graphs, where a larger magnitude overflows to infinity.
    if (Math.abs(value) > FLOAT32_MAX) this.fail(key, `must fit in float32 (magnitude at most 3.4e38); got ${value}.`);
    if (!satisfies(value, rule)) this.fail(key, `must be ${describeRule(rule)}; got ${value}.`);
    return value;
  }

  boolean(record: Record<string, unknown>, key: string, fallback: boolean): boolean {
    const value = record[key];
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") this.fail(key, `must be true or false; got ${describeValue(value)}.`);
    return value;
  }

  choice<T extends string>(record: Record<string, unknown>, key: string, allowed: readonly T[], fallback: T): T {
    const value = record[key];
    if (value === undefined) return fallback;
    if (typeof value !== "string" || !allowed.includes(value as T)) {
      this.fail(key, `must be one of ${allowed.map((item) => JSON.stringify(item)).join(", ")}; got ${describeValue(value)}.`);
    }
    return value as T;
  }

  /** Reads a map from path glob to number, as PEFT's rank_pattern and alpha_pattern. */
  patternMap(record: Record<string, unknown>, key: string, rule: NumberRule): Map<string, number> {
    const value = record[key];
    const result = new Map<string, number>();
    if (value === undefined) return result;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.fail(key, `must be an object from module path glob to number, such as { "layers.0.*": 16 }; got ${describeValue(value)}.`);
    }
    for (const [pattern, entry] of Object.entries(value as Record<string, unknown>)) {
      if (pattern.trim() === "") this.fail([key, pattern], "has an empty pattern; write a module path glob such as \"layers.0.*\".");
      if (typeof entry !== "number" || !Number.isFinite(entry) || !satisfies(entry, rule)) {
        this.fail([key, pattern], `must be ${describeRule(rule)}; got ${describeValue(entry)}.`);
      }
      result.set(pattern, entry);
    }
    return result;
  }
}

/** Range rule for a numeric option. */
const FLOAT32_MAX = 3.4028234663852886e38;

export interface NumberRule {
  integer?: boolean;
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Exclusive upper bound. */
  below?: number;
  /** Inclusive upper bound. */
  max?: number;
}

function satisfies(value: number, rule: NumberRule): boolean {
  if (rule.integer && !Number.isInteger(value)) return false;
  if (rule.min !== undefined && value < rule.min) return false;
  if (rule.above !== undefined && value <= rule.above) return false;
  if (rule.below !== undefined && value >= rule.below) return false;
  if (rule.max !== undefined && value > rule.max) return false;
  return true;
}

/** Describes a rule as "an integer >= 1" for one bound and "a number in [0, 1)" for two. */
function describeRule(rule: NumberRule): string {
  const kind = rule.integer ? "an integer" : "a number";
  const lower = rule.min !== undefined ? { bracket: "[", value: rule.min, text: `>= ${rule.min}` } : rule.above !== undefined ? { bracket: "(", value: rule.above, text: `> ${rule.above}` } : undefined;
  const upper = rule.max !== undefined ? { bracket: "]", value: rule.max, text: `<= ${rule.max}` } : rule.below !== undefined ? { bracket: ")", value: rule.below, text: `< ${rule.below}` } : undefined;
  if (lower && upper) return `${kind} in ${lower.bracket}${lower.value}, ${upper.value}${upper.bracket}`;
  const bound = lower ?? upper;
  return bound ? `${kind} ${bound.text}` : kind;
}
