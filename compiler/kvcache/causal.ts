import type { Model } from "../ir/model";
import type { Node } from "../ir/node";
import type { Discovery } from "../match/discover";

/** Ops that compare key and query positions when an exporter builds a causal mask. */
const POSITION_COMPARISONS = new Set(["Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Trilu"]);

/**
 * True when the model's attention is causal, the property that makes a KV
 * cache valid: a decomposed block's mask is built by comparing position
 * ranges (an encoder's padding mask never is), GroupQueryAttention is
 * causal by definition, and the other fused kernels say so with
 * `unidirectional`.
 */
export function hasCausalAttention(model: Model, discovery: Pick<Discovery, "attention">): boolean {
  const byName = new Map(model.graph.nodes.map((node) => [node.name, node]));
  for (const block of discovery.attention) {
    if (block.core.form === "fused") {
      const node = block.core.fused ? byName.get(block.core.fused) : undefined;
      if (!node) continue;
      if (node.opType === "GroupQueryAttention" || node.getInt("unidirectional", 0) === 1) return true;
      continue;
    }
    const softmax = block.core.softmax ? byName.get(block.core.softmax) : undefined;
    const add = softmax?.inputs[0]?.producer;
    if (add && add.inputs.some((input) => input?.producer && reachesComparison(input.producer))) return true;
  }
  return false;
}

function reachesComparison(start: Node): boolean {
  const seen = new Set<Node>();
  const stack = [start];
  while (stack.length > 0 && seen.size < 200) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    if (POSITION_COMPARISONS.has(node.opType)) return true;
    // The scores themselves are not part of the mask.
    if (node.opType === "MatMul") continue;
    for (const input of node.inputs) if (input?.producer) stack.push(input.producer);
  }
  return false;
}
