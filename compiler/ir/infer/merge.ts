import { dataTypeName } from "../../onnx/dtype";
import { Dim, TensorType, ValueType, formatShape } from "../types";
import { dimPolynomial, sameDim } from "./dims";
import { formatPolynomial } from "./polynomial";

/** The outcome of comparing a value's declared type with the inferred one. */
export interface MergedType {
  /** The type the value keeps. */
  type: ValueType;
  /**
   * The type later nodes compute with. It differs from `type` only where
   * the declaration and inference give two different names for one
   * dimension: the declared name is kept on the value, the inferred one
   * (written in terms of the graph's input dimensions) is computed with.
   */
  working: ValueType;
  /** Disagreements between the declaration and inference; the declared part is kept for each. */
  conflicts: string[];
  /** Pairs (derived dimension, declared name) where the graph names a derived dimension. */
  aliases: [string, string][];
}

/**
 * Merges a declared type (graph output, value_info) with an inferred one.
 * The declaration is kept unless inference is more precise: a declared
 * unknown or symbolic dimension gives way to an inferred number, and a
 * missing shape or element type to an inferred one. Two different numbers,
 * element types or ranks are conflicts: the declared value is kept and the
 * conflict reported.
 */
export function mergeTypes(declared: ValueType | undefined, inferred: ValueType): MergedType {
  if (!declared) return { type: inferred, working: inferred, conflicts: [], aliases: [] };
  if (declared.kind !== "tensor" || inferred.kind !== "tensor") {
    const conflicts = declared.kind === inferred.kind ? [] : [`declared a ${declared.kind} type but inference gives a ${inferred.kind} type`];
    return { type: declared, working: declared, conflicts, aliases: [] };
  }
  const conflicts: string[] = [];
  let elemType = declared.elemType;
  if (elemType === 0) elemType = inferred.elemType;
  else if (inferred.elemType !== 0 && inferred.elemType !== elemType) {
    conflicts.push(`declared element type ${dataTypeName(elemType)} but inference gives ${dataTypeName(inferred.elemType)}`);
  }
  const aliases: [string, string][] = [];
  const shapes = mergeShapes(declared.shape, inferred.shape, conflicts, aliases);
  return {
    type: { kind: "tensor", elemType, shape: shapes?.kept },
    working: { kind: "tensor", elemType, shape: shapes?.working },
    conflicts,
    aliases,
  };
}

function mergeShapes(declared: Dim[] | undefined, inferred: Dim[] | undefined, conflicts: string[], aliases: [string, string][]): { kept: Dim[]; working: Dim[] } | undefined {
  if (!declared) return inferred && { kept: inferred, working: inferred };
  if (!inferred) return { kept: declared, working: declared };
  if (declared.length !== inferred.length) {
    conflicts.push(`declared shape ${formatShape(declared)} (rank ${declared.length}) but inference gives ${formatShape(inferred)} (rank ${inferred.length})`);
    return { kept: declared, working: declared };
  }
  const merged = declared.map((dim, axis) => mergeDim(dim, inferred[axis], axis, conflicts, aliases));
  return { kept: merged.map(([kept]) => kept), working: merged.map(([, working]) => working) };
}

/** Returns [kept, working] for one axis. */
function mergeDim(declared: Dim, inferred: Dim, axis: number, conflicts: string[], aliases: [string, string][]): [Dim, Dim] {
  if (declared === null) return [inferred, inferred];
  if (inferred === null || sameDim(declared, inferred)) return [declared, declared];
  if (typeof declared === "number") {
    if (typeof inferred === "number") conflicts.push(`axis ${axis}: declared size ${declared} but inference gives ${inferred}`);
    return [declared, declared];
  }
  if (typeof inferred === "number") return [inferred, inferred];
  if (isDerivedDim(inferred) && isPlainName(declared)) aliases.push([canonicalDim(inferred), declared]);
  return [declared, inferred];
}

function isPlainName(dim: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_.]*$/.test(dim);
}

export function canonicalDim(dim: string): string {
  return formatPolynomial(dimPolynomial(dim)!);
}

/** True for an expression such as `past+seq`, as opposed to a plain dimension name. */
export function isDerivedDim(dim: string): boolean {
  return !isPlainName(canonicalDim(dim));
}

/** Returns `type` with every dimension listed in `aliases` (by canonical text) replaced by its declared name. */
export function applyAliases(type: TensorType, aliases: ReadonlyMap<string, string>): TensorType {
  if (!type.shape || aliases.size === 0) return type;
  let changed = false;
  const shape = type.shape.map((dim) => {
    if (typeof dim !== "string") return dim;
    const alias = aliases.get(canonicalDim(dim));
    if (alias === undefined || alias === dim) return dim;
    changed = true;
    return alias;
  });
  return changed ? { ...type, shape } : type;
}
