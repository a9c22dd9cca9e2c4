import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { constantInts, shapeOf, soleUse, visitDataPathBack } from "./graph-walk";
import type { HeadCounts } from "./attention-heads";
import type { MatchedModule } from "./module";
import type { AttentionAnchor } from "./structure";

export type QkvPart = "q" | "k" | "v";

/**
 * Row layout of a fused QKV projection's output. `contiguous`: all of Q, then
 * all of K, then all of V (in `order`), `widths` rows each. `interleaved`:
 * the output is [groups, parts, head_dim] and each head group contains its
 * own Q, K and V heads (Megatron, BLOOM), with `widths` counting rows per
 * group. `ambiguous`: the graph does not show which rows are Q, K and V, and
 * `message` gives the reason.
 */
export interface QkvLayout {
  layout: "contiguous" | "interleaved" | "ambiguous";
  order: QkvPart[] | null;
  widths: Record<QkvPart, number> | null;
  groups: number | null;
  /** Head dim of an interleaved [.., groups, parts, head_dim] output; null otherwise. */
  headDim: number | null;
  message: string | null;
}

/** Ops between a fused projection and the op that divides its output. */
const PASS_THROUGH = new Set(["Add", "Reshape", "Transpose", "Cast", "Identity"]);

/** One piece that a Split, Slice or Gather takes from the fused output: its value and its extent along the divided axis. */
interface Piece {
  value: Value;
  start: number | null;
  size: number | null;
}

function ambiguous(message: string): QkvLayout {
  return { layout: "ambiguous", order: null, widths: null, groups: null, headDim: null, message };
}

function normalizedAxis(axis: number, rank: number | undefined): number | undefined {
  if (axis >= 0) return axis;
  return rank === undefined ? undefined : axis + rank;
}

/** Returns the pieces of a Split, with sizes from its split input or attribute, or equal parts of a known dim. */
function splitPieces(split: Node, rank: number): { axis: number; pieces: Piece[] } | undefined {
  const axis = normalizedAxis(split.getInt("axis", 0), rank);
  if (axis === undefined) return undefined;
  const dim = shapeOf(split.inputs[0])?.[axis];
  let sizes = constantInts(split.inputs[1]) ?? split.getInts("split");
  if (!sizes && typeof dim === "number" && dim % split.outputs.length === 0) sizes = split.outputs.map(() => dim / split.outputs.length);
  let start = 0;
  const pieces = split.outputs.map((value, i) => {
    const size = sizes?.[i] ?? null;
    const piece = { value, start: sizes ? start : null, size };
    start += size ?? 0;
    return piece;
  });
  return { axis, pieces };
}

/** Returns the pieces of Slices or scalar Gathers that all read `value` on one axis. */
function selectPieces(value: Value, rank: number): { axis: number; pieces: Piece[] } | undefined {
  const pieces: Piece[] = [];
  let axis: number | undefined;
  for (const { node } of value.uses) {
    let nodeAxis: number | undefined;
    let piece: Piece | undefined;
    if (node.opType === "Slice") {
      const [starts, ends, axes] = [2, 3, 4].map((i) => constantInts(node.inputs[i - 1]));
      if (starts?.length !== 1 || ends?.length !== 1) return undefined;
      nodeAxis = normalizedAxis(axes?.[0] ?? 0, rank);
      const dim = nodeAxis === undefined ? undefined : shapeOf(value)?.[nodeAxis];
      const end = ends[0] > (typeof dim === "number" ? dim : Infinity) ? dim : ends[0];
      piece = { value: node.outputs[0], start: starts[0], size: typeof end === "number" ? end - starts[0] : null };
    } else if (node.opType === "Gather") {
      const index = constantInts(node.inputs[1]);
      if (index?.length !== 1) return undefined;
      nodeAxis = normalizedAxis(node.getInt("axis", 0), rank);
      piece = { value: node.outputs[0], start: index[0], size: 1 };
    } else {
      continue;
    }
    if (nodeAxis === undefined || (axis !== undefined && axis !== nodeAxis)) return undefined;
    axis = nodeAxis;
    pieces.push(piece);
  }
  pieces.sort((a, b) => (a.start ?? 0) - (b.start ?? 0));
  return axis === undefined || pieces.length < 3 ? undefined : { axis, pieces };
}

/** Follows `value` through bias Adds and layout ops with one reader each, to where it is divided. */
function dividedValue(output: Value): Value {
  let value = output;
  for (let depth = 0; depth < 6; depth++) {
    const next = soleUse(value);
    if (!next || !PASS_THROUGH.has(next.opType)) return value;
    value = next.outputs[0];
  }
  return value;
}

/** Marks each node on the data path of the query, key and value inputs of the core with the part it carries. */
function sideNodes(anchor: AttentionAnchor, isBoundary: (node: Node) => boolean): Map<Node, Set<QkvPart>> {
  const inputs: [QkvPart, Value | undefined][] = anchor.scores && anchor.context
    ? [["q", anchor.scores.inputs[0]], ["k", anchor.scores.inputs[1]], ["v", anchor.context.inputs[1]]]
    : [["q", anchor.node.inputs[0]], ["k", anchor.node.inputs[1]], ["v", anchor.node.inputs[2]]];
  const sides = new Map<Node, Set<QkvPart>>();
  for (const [part, value] of inputs) {
    if (!value) continue;
    visitDataPathBack(value, isBoundary, (node) => sides.set(node, new Set([...(sides.get(node) ?? []), part])));
  }
  return sides;
}

/** Returns the part a piece carries to the core: the only part whose data path its readers are on. */
function pieceRole(piece: Piece, sides: Map<Node, Set<QkvPart>>): QkvPart | undefined {
  const parts = new Set<QkvPart>();
  for (const { node } of piece.value.uses) for (const part of sides.get(node) ?? []) parts.add(part);
  return parts.size === 1 ? [...parts][0] : undefined;
}

/** Layout when the fused output feeds a fused op's packed query input: Q, K, V in that order by the op's definition. */
function packedInputLayout(heads: HeadCounts): QkvLayout {
  const { heads: q, kvHeads: kv, headDim } = heads;
  const widths = q !== null && kv !== null && headDim !== null ? { q: q * headDim, k: kv * headDim, v: kv * headDim } : null;
  return { layout: "contiguous", order: ["q", "k", "v"], widths, groups: null, headDim: null, message: null };
}

/** Layout of com.microsoft Attention's packed weight: Q, K, V columns in that order, sized by qkv_hidden_sizes or in thirds. */
function packedWeightLayout(node: Node, outFeatures: number | undefined): QkvLayout {
  const sizes = node.getInts("qkv_hidden_sizes");
  let widths: Record<QkvPart, number> | null = null;
  if (sizes?.length === 3) widths = { q: sizes[0], k: sizes[1], v: sizes[2] };
  else if (outFeatures !== undefined && outFeatures % 3 === 0) widths = { q: outFeatures / 3, k: outFeatures / 3, v: outFeatures / 3 };
  return { layout: "contiguous", order: ["q", "k", "v"], widths, groups: null, headDim: null, message: null };
}

/**
 * Reads how the output rows of the fused QKV projection `module` map to the
 * Q, K and V inputs of the attention core `anchor`. The Split, Slices or
 * Gathers that divide the output give the row ranges, and the core input that
 * each piece reaches gives its part. A layout the graph does not show is
 * returned as ambiguous with the reason.
 */
export function readQkvLayout(module: MatchedModule, anchor: AttentionAnchor, heads: HeadCounts, isBoundary: (node: Node) => boolean): QkvLayout {
  if (module.node === anchor.node) return packedWeightLayout(anchor.node, module.outFeatures);
  const divided = dividedValue(module.output);
  const packedCore = anchor.node.domain === "com.microsoft" && !anchor.node.inputs[1];
  if (divided.uses.some(({ node, index }) => node === anchor.node && index === 0) && packedCore) return packedInputLayout(heads);

  const shape = shapeOf(divided);
  if (!shape) return ambiguous(`the rank of ${divided.name}, which divides into Q, K and V, is unknown`);
  const split = soleUse(divided);
  const found = split?.opType === "Split" ? splitPieces(split, shape.length) : selectPieces(divided, shape.length);
  if (!found) return ambiguous(`no Split, Slice or Gather with constant bounds divides ${divided.name} into Q, K and V`);
  if (found.pieces.length !== 3) return ambiguous(`${divided.name} is divided into ${found.pieces.length} parts, not Q, K and V`);

  const sides = sideNodes(anchor, isBoundary);
  const order = found.pieces.map((piece) => pieceRole(piece, sides));
  if (order.some((part) => part === undefined) || new Set(order).size !== 3) {
    return ambiguous(`the parts of ${divided.name} could not each be traced to one of the query, key and value inputs of ${anchor.node.name || anchor.node.opType}`);
  }
  const parts = order as QkvPart[];
  // Pieces of a [.., groups, parts, head_dim] output are counted in heads.
  const headDim = shape.length === 5 ? shape[4] : 1;
  const sizes = found.pieces.map((piece) => (piece.size !== null && typeof headDim === "number" ? piece.size * headDim : null));
  const widths = sizes.every((size) => size !== null) ? { [parts[0]]: sizes[0]!, [parts[1]]: sizes[1]!, [parts[2]]: sizes[2]! } as Record<QkvPart, number> : null;
  const lastAxis = found.axis === shape.length - 1;

  if (lastAxis && shape.length <= 3) return { layout: "contiguous", order: parts, widths, groups: null, headDim: null, message: null };
  // [batch, seq, groups, parts * head_dim] divided on the last axis, or
  // [batch, seq, groups, parts, head_dim] divided on the parts axis.
  const groups = shape[2];
  if ((shape.length === 4 && lastAxis) || (shape.length === 5 && found.axis === 3)) {
    const groupCount = typeof groups === "number" ? groups : null;
    return { layout: "interleaved", order: parts, widths, groups: groupCount, headDim: shape.length === 5 && typeof headDim === "number" ? headDim : null, message: null };
  }
  return ambiguous(`${divided.name} of rank ${shape.length} is divided on axis ${found.axis}, which is neither the hidden axis nor a per-group parts axis`);
}
