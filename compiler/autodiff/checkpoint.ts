import { attr } from "../ir/attribute";
import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import type { GradBuilder } from "./grad-builder";

/**
 * Segments of activation checkpointing. The forward graph is cut at given
 * values (the residual stream entering each transformer layer). The
 * backward pass of each segment reads a copy of its forward nodes,
 * recomputed from its start value when the backward pass reaches it. The
 * forward pass's own intermediates are then dead right after their forward
 * use, so onnxruntime frees them. Only the segment starts, values from
 * outside the segments (masks, rotary tables) and dropout masks live across
 * the whole step.
 */
export interface Segments {
  /** Segment index of each node inside a segment. */
  segmentOf: Map<Node, number>;
  /** Nodes of each segment in forward order. */
  nodes: Node[][];
  /** The value each segment starts from and the value it ends at. */
  starts: Value[];
  ends: Value[];
}

/**
 * Splits the nodes between consecutive `boundaries` into segments: segment
 * i holds every node that depends on boundary i and that boundary i + 1
 * depends on. Segments with a subgraph-bearing node are left out, because
 * copying a subgraph is not supported.
 */
export function planSegments(order: readonly Node[], boundaries: readonly Value[]): Segments {
  const segmentOf = new Map<Node, number>();
  const segments: Segments = { segmentOf, nodes: [], starts: [], ends: [] };
  for (let i = 0; i + 1 < boundaries.length; i++) {
    const [start, end] = [boundaries[i], boundaries[i + 1]];
    const ancestors = ancestorNodes(end);
    const reached = new Set<Value>([start]);
    const nodes: Node[] = [];
    for (const node of order) {
      if (!ancestors.has(node) || !node.inputs.some((input) => input !== undefined && reached.has(input))) continue;
      nodes.push(node);
      for (const output of node.outputs) reached.add(output);
    }
    if (nodes.length === 0 || nodes.some((node) => node.subgraphs.length > 0 || segmentOf.has(node))) continue;
    const index = segments.nodes.length;
    for (const node of nodes) segmentOf.set(node, index);
    segments.nodes.push(nodes);
    segments.starts.push(start);
    segments.ends.push(end);
  }
  return segments;
}

function ancestorNodes(value: Value): Set<Node> {
  const seen = new Set<Node>();
  const stack = value.producer ? [value.producer] : [];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const input of node.inputs) if (input?.producer && !seen.has(input.producer)) stack.push(input.producer);
  }
  return seen;
}

/**
 * Emits a copy of a segment's forward nodes that reads `start` through a
 * zero derived from `trigger`, the gradient at the segment's end. The copy
 * therefore runs only once the backward pass gets there, and graph
 * optimizers cannot merge it with the original. Dropout is not rerun: the
 * copy reapplies the forward pass's mask, so both passes drop the same
 * units. Returns the copy of each node.
 */
export function recomputeSegment(b: GradBuilder, nodes: readonly Node[], start: Value, trigger: Value): Map<Node, Node> {
  // Shape(trigger) waits for the gradient but never reads its values, so an infinite gradient cannot poison the copy.
  const zero = b.op("Cast", [b.op("Mul", [b.op("ReduceMin", [b.shape(trigger)], [attr.int("keepdims", 0)]), b.intScalar(0)])], [attr.int("to", b.dtype(start))]);
  const replaced = new Map<Value, Value>([[start, b.typed(b.op("Add", [start, zero]), start)]]);
  const copies = new Map<Node, Node>();
  for (const node of nodes) {
    const inputs = node.inputs.map((input) => (input ? (replaced.get(input) ?? input) : undefined));
    if (node.opType === "Dropout" && node.domain === "" && node.outputs[1] && !node.outputs[1].isOmitted) {
      const ratio = node.inputs[1];
      const dtype = b.dtype(node.outputs[0]);
      const keep = b.op("Cast", [node.outputs[1]], [attr.int("to", dtype)]);
      const scale = ratio ? b.op("Div", [b.scalar(1, dtype), b.op("Sub", [b.scalar(1, dtype), ratio])]) : b.scalar(2, dtype);
      replaced.set(node.outputs[0], b.typed(b.op("Mul", [b.op("Mul", [inputs[0]!, keep]), scale]), node.outputs[0]));
      continue;
    }
    const copy = b.graph.addNode({ opType: node.opType, domain: node.domain, name: `${node.name}/recompute`, inputs, attributes: [...node.attributes.values()], outputs: node.outputs.length });
    node.outputs.forEach((output, i) => {
      const copied = copy.outputs[i];
      if (output.type) copied.type = output.type;
      replaced.set(output, copied);
    });
    copies.set(node, copy);
  }
  return copies;
}
