import type { Model } from "../model";
import { ShapeInferenceEngine } from "./engine";
import { createDefaultRegistry } from "./ops";
import { ShapeRuleRegistry } from "./registry";
import { InferenceReport } from "./report";

export { InferenceContext, MissingInputType } from "./context";
export type { InferenceHost, TypedData } from "./context";
export { ShapeRuleRegistry, normalizeDomain } from "./registry";
export type { RegisteredRule, RuleDefinition, ShapeRule } from "./registry";
export { formatReport, unsupportedOpTypes } from "./report";
export type { InferenceFailure, InferenceReport, InferredValue, TypeConflict, UnsupportedOp, UntypedValue } from "./report";
export { evaluateDimension } from "./symbolic";
export { createDefaultRegistry };

export interface InferShapesOptions {
  /** Rules to use; default: every built-in rule family. */
  registry?: ShapeRuleRegistry;
}

let defaultRegistry: ShapeRuleRegistry | undefined;

/**
 * Infers the element type and shape of every value it can, in place: node
 * outputs of the main graph and its subgraphs get `value.type`. Symbolic
 * dimensions keep their names, and dimensions computed at run time (Concat
 * of a cache and new keys, Reshape to a Shape-derived target) get derived
 * names such as `past_sequence+sequence`, or the name the graph declares for
 * them. Declared types are kept unless inference is more precise.
 *
 * Returns a report of typed values, operators without a rule (reported,
 * never guessed), rule failures, and declared types that disagree with
 * inference.
 */
export function inferShapes(model: Model, options: InferShapesOptions = {}): InferenceReport {
  const registry = options.registry ?? (defaultRegistry ??= createDefaultRegistry());
  return new ShapeInferenceEngine(model, registry).run();
}
