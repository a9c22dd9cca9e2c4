import { PeftcError } from "../../errors";
import type { InferenceContext } from "./context";

/** Computes the output types (and known values) of one node from its inputs. */
export type ShapeRule = (ctx: InferenceContext) => void;

/** One registration: the rule applies from opset `since` of `domain` until a later registration takes over. */
export interface RuleDefinition {
  opType: string;
  /** Operator domain; "" (or "ai.onnx") is the default ONNX domain. */
  domain?: string;
  /**
   * First opset version of the domain this rule covers. The first rule of
   * an operator starts at the version that introduced it, so a node at an
   * older opset is reported as unsupported instead of typed.
   */
  since: number;
  infer: ShapeRule;
}

export interface RegisteredRule {
  readonly opType: string;
  readonly domain: string;
  readonly since: number;
  readonly infer: ShapeRule;
}

export function normalizeDomain(domain: string | undefined): string {
  return !domain || domain === "ai.onnx" ? "" : domain;
}

function opKey(domain: string, opType: string): string {
  return `${domain}::${opType}`;
}

/**
 * Shape inference rules keyed by (domain, op type), each with the opset
 * versions it covers. Operators whose inputs or attributes changed meaning
 * between opsets (ReduceSum axes, Split sizes, Squeeze axes, Slice starts)
 * register one rule per version range. Registering the same (domain, op
 * type, since) twice throws, so one family cannot silently replace another's rule.
 */
export class ShapeRuleRegistry {
  private readonly rules = new Map<string, RegisteredRule[]>();

  register(definition: RuleDefinition): void {
    const domain = normalizeDomain(definition.domain);
    const since = definition.since;
    const key = opKey(domain, definition.opType);
    if (!Number.isInteger(since) || since < 1) {
      throw new PeftcError("E_SHAPE_INFERENCE", `the shape rule for ${definition.opType} starts at opset ${since}, which is not a positive integer. Set since to the opset version that introduced the operator.`, {
        op: definition.opType,
        domain,
      });
    }
    const versions = this.rules.get(key) ?? [];
    if (versions.some((rule) => rule.since === since)) {
      throw new PeftcError(
        "E_SHAPE_INFERENCE",
        `a shape rule for ${definition.opType} in domain "${domain || "ai.onnx"}" from opset ${since} is already registered; remove one of the two registrations.`,
        { op: definition.opType, domain },
      );
    }
    versions.push({ opType: definition.opType, domain, since, infer: definition.infer });
    versions.sort((a, b) => a.since - b.since);
    this.rules.set(key, versions);
  }

  registerAll(definitions: readonly RuleDefinition[]): void {
    for (const definition of definitions) this.register(definition);
  }

  /** Finds the rule whose version range contains `opset`, or undefined when none does. */
  resolve(domain: string, opType: string, opset: number): RegisteredRule | undefined {
    const versions = this.rules.get(opKey(normalizeDomain(domain), opType));
    if (!versions) return undefined;
    let found: RegisteredRule | undefined;
    for (const rule of versions) if (rule.since <= opset) found = rule;
    return found;
  }

  /** Lists every registration, sorted by domain, op type and version. */
  list(): RegisteredRule[] {
    return [...this.rules.values()].flat().sort((a, b) => opKey(a.domain, a.opType).localeCompare(opKey(b.domain, b.opType)) || a.since - b.since);
  }
}
