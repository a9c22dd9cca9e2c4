import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { shapeOf, visitDataPathBack } from "./graph-walk";
import type { AttentionAnchor } from "./structure";

/** Rotary position embedding applied to the queries and keys of one attention block. */
export interface Rotary {
  /** "rotate_half" for the decomposed Neg/Concat/Mul/Add pattern, otherwise the op that applies it. */
  form: string;
  query: boolean;
  key: boolean;
  /** Head dims rotated; null when the graph does not state it. Less than the head dim for partial rotary. */
  rotaryDim: number | null;
}

interface SideRotary {
  form: string;
  rotaryDim: number | null;
}

const ROTARY_OPS = new Set(["RotaryEmbedding", "com.microsoft::RotaryEmbedding"]);

/** True for the Concat of rotate_half: one of its inputs is a Neg of the other half. */
function isRotateHalfConcat(node: Node): boolean {
  return node.opType === "Concat" && node.inputs.length === 2 && node.inputs.some((input) => input?.producer?.opType === "Neg");
}

/** Rotated dims of a rotate_half Concat: its output width, which is the Neg half twice. */
function rotateHalfDim(concat: Node): number | null {
  const shape = shapeOf(concat.outputs[0]);
  const last = shape?.[shape.length - 1];
  return typeof last === "number" ? last : null;
}

/** Returns the rotary op's rotary_embedding_dim, or the head dim it covers when the attribute is 0 or absent. */
function rotaryOpDim(node: Node): number | null {
  const dim = node.getInt("rotary_embedding_dim", 0);
  if (dim > 0) return dim;
  const shape = shapeOf(node.outputs[0]);
  const last = shape?.[shape.length - 1];
  // A 4-D [batch, heads, seq, head_dim] input covers the whole head; a 3-D one needs num_heads to split the width.
  return shape?.length === 4 && typeof last === "number" ? last : null;
}

function sideRotary(value: Value | undefined, isBoundary: (node: Node) => boolean): SideRotary | undefined {
  if (!value) return undefined;
  let found: SideRotary | undefined;
  visitDataPathBack(value, isBoundary, (node) => {
    if (found) return;
    if (ROTARY_OPS.has(node.qualifiedOpType)) found = { form: node.qualifiedOpType, rotaryDim: rotaryOpDim(node) };
    else if (isRotateHalfConcat(node)) found = { form: "rotate_half", rotaryDim: rotateHalfDim(node) };
  });
  return found;
}

/** GroupQueryAttention rotates Q and K itself when do_rotary is set; the cos cache is [positions, rotary_dim / 2]. */
function fusedRotary(node: Node): Rotary | undefined {
  if (node.qualifiedOpType !== "com.microsoft::GroupQueryAttention" || node.getInt("do_rotary", 0) === 0) return undefined;
  const cos = shapeOf(node.inputs[7]);
  const half = cos?.[1];
  return { form: node.qualifiedOpType, query: true, key: true, rotaryDim: typeof half === "number" ? 2 * half : null };
}

/**
 * Finds rotary embeddings on the query and key sides of one attention core:
 * the decomposed rotate_half pattern, a RotaryEmbedding op, or a
 * GroupQueryAttention that applies it itself. Undefined when neither side has one.
 */
export function findRotary(anchor: AttentionAnchor, isBoundary: (node: Node) => boolean): Rotary | undefined {
  const fused = fusedRotary(anchor.node);
  if (fused) return fused;
  const [queryValue, keyValue] = anchor.scores ? anchor.scores.inputs : anchor.node.inputs;
  const query = sideRotary(queryValue, isBoundary);
  const key = sideRotary(keyValue, isBoundary);
  const side = query ?? key;
  if (!side) return undefined;
  const rotaryDim = query && key && query.rotaryDim !== key.rotaryDim ? null : side.rotaryDim;
  return { form: side.form, query: query !== undefined, key: key !== undefined, rotaryDim };
}
