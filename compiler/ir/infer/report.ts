import { Dim, ValueType } from "../types";

/** A value whose type inference set, confirmed or refined. */
export interface InferredValue {
  graph: string;
  value: string;
  type: ValueType;
  /**
   * Element values inference determined (row-major), for small tensors such
   * as shape vectors: numbers, symbolic dimensions, or null where unknown.
   */
  values?: readonly Dim[];
}

/** A node no shape rule covers and no model-local function defines. */
export interface UnsupportedOp {
  graph: string;
  node: string;
  opType: string;
  domain: string;
  opset: number;
}

/** A node whose rule rejected its inputs or attributes. */
export interface InferenceFailure {
  graph: string;
  node: string;
  opType: string;
  domain: string;
  /** The node's first output, when it has one. */
  value?: string;
  message: string;
}

/** A declared type that disagrees with the inferred one; the declared type was kept. */
export interface TypeConflict {
  graph: string;
  value: string;
  /** The node that produces the value, or "" for an initializer whose declared type disagrees with its tensor. */
  node: string;
  declared: string;
  inferred: string;
  detail: string;
}

/** A node output left without a type, and why. */
export interface UntypedValue {
  graph: string;
  value: string;
  node: string;
  reason: string;
}

export interface InferenceReport {
  /** Node outputs that have a type after inference, in graph order. */
  inferred: InferredValue[];
  /** Those of `inferred` whose rank or some dimension is still unknown. */
  incomplete: InferredValue[];
  unsupported: UnsupportedOp[];
  failures: InferenceFailure[];
  conflicts: TypeConflict[];
  untyped: UntypedValue[];
}

export function emptyReport(): InferenceReport {
  return { inferred: [], incomplete: [], unsupported: [], failures: [], conflicts: [], untyped: [] };
}

/** Lists the distinct unsupported operators as `domain::OpType` (`OpType` alone in the default domain), sorted. */
export function unsupportedOpTypes(report: InferenceReport): string[] {
  const names = report.unsupported.map((entry) => (entry.domain ? `${entry.domain}::${entry.opType}` : entry.opType));
  return [...new Set(names)].sort();
}

/** Writes a short plain-text summary, one line per problem. */
export function formatReport(report: InferenceReport): string {
  const lines = [`${report.inferred.length} values typed, ${report.incomplete.length} with unknown dimensions, ${report.untyped.length} untyped`];
  for (const entry of report.unsupported) {
    const op = entry.domain ? `${entry.domain}::${entry.opType}` : entry.opType;
    lines.push(`unsupported: ${op} (opset ${entry.opset}) at node "${entry.node}" in graph "${entry.graph}"`);
  }
  for (const entry of report.failures) lines.push(`failed: ${entry.message}`);
  for (const entry of report.conflicts) {
    const producer = entry.node ? ` (node "${entry.node}")` : "";
    lines.push(`conflict: value "${entry.value}"${producer}: ${entry.detail}`);
  }
  return lines.join("\n");
}
