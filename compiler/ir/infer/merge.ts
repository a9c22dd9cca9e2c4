import { dataTypeName } from "../../onnx/dtype";
import { Dim, TensorType, ValueType, formatShape } from "../types";
import { compareDims, dimPolynomial, sameDim } from "./dims";
import { formatPolynomial } from "./polynomial";

/** The outcome of comparing a value's declared type with the inferred one. */
export interface MergedType {
  /** The type the value keeps. */
  type: ValueType;
  /**
   * The type later nodes compute with. It differs from `type` only where
   * the declaration names a dimension differently from inference, or
   * conflicts with it. The declared name is kept on the value, and later
   * nodes compute with the inferred dimension, written in terms of the
   * graph's input dimensions.
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
 * element types or ranks are conflicts, and so are two dimensions that can
 * never be equal (`seq` declared where inference gives `seq+1`): the
 * declared value is kept and the conflict reported.
 *
 * `inputAxisNames` lists the dimension names of the graph inputs. Such a
 * name already stands for an input axis, so it is never taken as the name
 * of a different derived dimension.
 */
export function mergeTypes(declared: ValueType | undefined, inferred: ValueType, inputAxisNames: ReadonlySet<string> = new Set()): MergedType {
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
  const merge: DimMerge = { conflicts, aliases: [], inputAxisNames };
  const shapes = mergeShapes(declared.shape, inferred.shape, merge);
  return {
    type: { kind: "tensor", elemType, shape: shapes?.kept },
    working: { kind: "tensor", elemType, shape: shapes?.working },
    conflicts,
    aliases: merge.aliases,
  };
}

/** Conflicts and aliases collected while merging the dimensions of one shape, and the names that cannot become aliases. */
interface DimMerge {
  conflicts: string[];
  aliases: [string, string][];
  inputAxisNames: ReadonlySet<string>;
}

function mergeShapes(declared: Dim[] | undefined, inferred: Dim[] | undefined, merge: DimMerge): { kept: Dim[]; working: Dim[] } | undefined {
  if (!declared) return inferred && { kept: inferred, working: inferred };
  if (!inferred) return { kept: declared, working: declared };
  if (declared.length !== inferred.length) {
    merge.conflicts.push(`declared shape ${formatShape(declared)} (rank ${declared.length}) but inference gives ${formatShape(inferred)} (rank ${inferred.length})`);
    return { kept: declared, working: declared };
  }
  const merged = declared.map((dim, axis) => mergeDim(dim, inferred[axis], axis, merge));
  return { kept: merged.map(([kept]) => kept), working: merged.map(([, working]) => working) };
}

/** True when two dimensions differ for every non-negative size of their names, as `seq` and `seq+1` do. */
function neverEqual(a: Dim, b: Dim): boolean {
  const order = compareDims(a, b);
  return order === "less" || order === "greater";
}

/** Returns [kept, working] for one axis. */
function mergeDim(declared: Dim, inferred: Dim, axis: number, merge: DimMerge): [Dim, Dim] {
  if (declared === null) return [inferred, inferred];
  if (inferred === null || sameDim(declared, inferred)) return [declared, declared];
  if (typeof declared === "number" && typeof inferred === "number") {
    merge.conflicts.push(`axis ${axis}: declared size ${declared} but inference gives ${inferred}`);
    return [declared, declared];
  }
  if (neverEqual(declared, inferred)) {
    merge.conflicts.push(`axis ${axis}: declared ${declared} but inference gives ${inferred}, which is never equal to it`);
    return [declared, typeof declared === "number" ? declared : inferred];
  }
  if (typeof declared === "number") return [declared, declared];
  if (typeof inferred === "number") return [inferred, inferred];
  if (isDerivedDim(inferred) && isPlainName(declared) && !merge.inputAxisNames.has(declared)) merge.aliases.push([canonicalDim(inferred), declared]);
  return [declared, inferred];
}

/** True for a name such as `seq` or `past_sequence`, as opposed to an expression. */
export function isPlainName(dim: string): boolean {
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
