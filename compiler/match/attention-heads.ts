import type { Node } from "../ir/node";
import type { Dim } from "../ir/types";
import type { Value } from "../ir/value";
import { shapeOf, visitDataPathBack } from "./graph-walk";
import type { AttentionAnchor } from "./structure";

/** Head counts of one attention block, each null when the graph does not state it. */
export interface HeadCounts {
  heads: number | null;
  /** Key/value heads: fewer than `heads` under grouped-query attention. */
  kvHeads: number | null;
  headDim: number | null;
  /** Source of the counts, such as "num_heads attribute" or "Reshape to [batch, seq, heads, head_dim]". */
  source: string | null;
}

const UNKNOWN: HeadCounts = { heads: null, kvHeads: null, headDim: null, source: null };

function known(dim: Dim | undefined): number | undefined {
  return typeof dim === "number" && dim > 0 ? dim : undefined;
}

/** Reads [.., heads, head_dim] from a Reshape that splits the hidden size: the last input dim equals heads times head_dim. */
function headSplit(node: Node): { heads: number; headDim: number } | undefined {
  if (node.opType !== "Reshape") return undefined;
  const input = shapeOf(node.inputs[0]);
  const output = shapeOf(node.outputs[0]);
  if (!input || !output || output.length !== 4) return undefined;
  const hidden = known(input[input.length - 1]);
  const heads = known(output[2]);
  const headDim = known(output[3]);
  if (hidden === undefined || heads === undefined || headDim === undefined || heads * headDim !== hidden) return undefined;
  return { heads, headDim };
}

/**
 * Returns the heads and head dim of one side of a decomposed core, read from
 * the Reshape between its projection and the core. Undefined when there is
 * none, or when two Reshapes on the path disagree.
 */
export function sideHeads(value: Value | undefined, isBoundary: (node: Node) => boolean): { heads: number; headDim: number } | undefined {
  if (!value) return undefined;
  const found = new Map<string, { heads: number; headDim: number }>();
  visitDataPathBack(value, isBoundary, (node) => {
    const split = headSplit(node);
    if (split) found.set(`${split.heads}x${split.headDim}`, split);
  });
  return found.size === 1 ? [...found.values()][0] : undefined;
}

function decomposedHeads(anchor: AttentionAnchor, isBoundary: (node: Node) => boolean): HeadCounts {
  const q = sideHeads(anchor.scores!.inputs[0], isBoundary);
  const k = sideHeads(anchor.scores!.inputs[1], isBoundary);
  const v = sideHeads(anchor.context!.inputs[1], isBoundary);
  return combineSides(q, k, v);
}

type SideHeads = { heads: number; headDim: number } | undefined;

/** Takes the query heads from the Q side, and the key/value heads from K and V unless they disagree. */
function combineSides(q: SideHeads, k: SideHeads, v: SideHeads): HeadCounts {
  const kv = k && v && (k.heads !== v.heads || k.headDim !== v.headDim) ? undefined : (k ?? v);
  if (!q && !kv) return UNKNOWN;
  return { heads: q?.heads ?? null, kvHeads: kv?.heads ?? null, headDim: q?.headDim ?? kv?.headDim ?? null, source: "Reshape to [batch, seq, heads, head_dim]" };
}

/** Reads a call of a model-local attention function from the Reshapes before its query, key and value inputs. */
function callHeads(anchor: AttentionAnchor, isBoundary: (node: Node) => boolean): HeadCounts {
  const [q, k, v] = [0, 1, 2].map((i) => sideHeads(anchor.node.inputs[i], isBoundary));
  return combineSides(q, k, v);
}

/** Divides when both are known and the division is exact. */
function exactDivide(total: number | undefined, parts: number | undefined): number | null {
  if (total === undefined || parts === undefined || parts <= 0 || total % parts !== 0) return null;
  return total / parts;
}

function lastDim(value: Value | undefined): number | undefined {
  const shape = shapeOf(value);
  return shape && shape.length > 0 ? known(shape[shape.length - 1]) : undefined;
}

/** Reads com.microsoft Attention: num_heads, and the Q width from qkv_hidden_sizes or a third of the packed weight. */
function packedAttentionHeads(node: Node): HeadCounts {
  const heads = node.getInt("num_heads");
  if (heads === undefined) return UNKNOWN;
  const sizes = node.getInts("qkv_hidden_sizes");
  const packed = shapeOf(node.inputs[1]);
  const total = packed?.length === 2 ? known(packed[1]) : undefined;
  const queryWidth = sizes ? sizes[0] : exactDivide(total, 3) ?? undefined;
  return { heads, kvHeads: heads, headDim: exactDivide(queryWidth, heads), source: sizes ? "num_heads and qkv_hidden_sizes attributes" : "num_heads attribute and packed weight width" };
}

/** Reads MultiHeadAttention and GroupQueryAttention: num_heads, kv_num_heads, and the query width. */
function microsoftHeads(node: Node): HeadCounts {
  const heads = node.getInt("num_heads");
  if (heads === undefined) return UNKNOWN;
  const kvHeads = node.getInt("kv_num_heads") ?? heads;
  const query = shapeOf(node.inputs[0]);
  // MultiHeadAttention also takes a packed [batch, seq, heads, 3, head_dim] query.
  if (query?.length === 5) return { heads, kvHeads, headDim: known(query[4]) ?? null, source: "num_heads attribute" };
  const packedQkv = !node.inputs[1];
  const width = lastDim(node.inputs[0]);
  const headDim = packedQkv && node.opType === "GroupQueryAttention" ? exactDivide(width, heads + 2 * kvHeads) : exactDivide(width, heads);
  return { heads, kvHeads, headDim, source: node.attributes.has("kv_num_heads") ? "num_heads and kv_num_heads attributes" : "num_heads attribute" };
}

/** Reads ONNX Attention: 4-D inputs are [batch, heads, seq, head_dim], 3-D ones need q_num_heads and kv_num_heads. */
function onnxAttentionHeads(node: Node): HeadCounts {
  const query = shapeOf(node.inputs[0]);
  const key = shapeOf(node.inputs[1]);
  if (query?.length === 4) {
    return { heads: known(query[1]) ?? null, kvHeads: known(key?.[1]) ?? null, headDim: known(query[3]) ?? null, source: "4-D query and key shapes" };
  }
  const heads = node.getInt("q_num_heads");
  const kvHeads = node.getInt("kv_num_heads");
  if (heads === undefined) return UNKNOWN;
  return { heads, kvHeads: kvHeads ?? null, headDim: exactDivide(lastDim(node.inputs[0]), heads), source: "q_num_heads and kv_num_heads attributes" };
}

/**
 * Reads the query heads, key/value heads and head dim of one attention core
 * from attributes of a fused op or from the Reshapes of a decomposed one.
 * `isBoundary` returns true for the nodes where a backward walk from the
 * core stops (the projections). Counts the graph does not state stay null.
 */
export function readHeads(anchor: AttentionAnchor, isBoundary: (node: Node) => boolean): HeadCounts {
  const node = anchor.node;
  if (anchor.scores && anchor.context) return decomposedHeads(anchor, isBoundary);
  if (node.qualifiedOpType === "com.microsoft::Attention") return packedAttentionHeads(node);
  if (node.domain === "com.microsoft") return microsoftHeads(node);
  if (node.qualifiedOpType === "Attention") return onnxAttentionHeads(node);
  return callHeads(anchor, isBoundary);
}
