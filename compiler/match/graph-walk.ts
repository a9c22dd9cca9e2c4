import type { Tensor } from "../onnx/tensor";
import { DataType, isFloatType } from "../onnx/dtype";
import { AttributeType } from "../ir/attribute";
import type { Dim } from "../ir/types";
import type { Graph } from "../ir/graph";
import type { Node } from "../ir/node";
import { topologicalOrder } from "../ir/topological-sort";
import { forEachGraph } from "../ir/traverse";
import type { Value } from "../ir/value";
import type { Parameter } from "./module";

/** Ops that move or reshape data without computing on it. */
export const LAYOUT_OPS = new Set(["Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Cast", "Flatten", "Expand", "Split", "Slice", "Concat", "Gather"]);

/** Returns `value` as a parameter when it is a float initializer that no graph input overrides. */
export function floatParameter(value: Value | undefined): Parameter | undefined {
  if (!value || !value.isConstant) return undefined;
  const tensor = value.initializer!;
  if (!isFloatType(tensor.dtype)) return undefined;
  return { value, shape: [...tensor.dims] };
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

/** Returns the only node reading `value`, or undefined when it has zero or several readers or is a graph output. */
export function soleUse(value: Value): Node | undefined {
  if (value.uses.length !== 1 || value.graph.isReturned(value)) return undefined;
  return value.uses[0].node;
}

/** Returns the input of a two-input node that is not `from`. */
export function otherInput(node: Node, from: Value): Value | undefined {
  const [a, b] = node.inputs;
  if (a === from) return b;
  if (b === from) return a;
  return undefined;
}

/** Returns every graph of the model in a fixed order: the main graph, then subgraphs depth first. */
export function allGraphs(root: Graph): Graph[] {
  const graphs: Graph[] = [];
  forEachGraph(root, (graph) => graphs.push(graph));
  return graphs;
}

/**
 * Numbers every node of every graph in topological order; subgraph nodes come
 * after the main graph. Exporters do not always sort their node lists, so
 * file order cannot stand for the order along the residual stream.
 */
export function orderNodes(root: Graph): Map<Node, number> {
  const position = new Map<Node, number>();
  for (const graph of allGraphs(root)) for (const node of topologicalOrder(graph)) position.set(node, position.size);
  return position;
}

/**
 * Walks from `start` along node outputs (forward) or node inputs (backward),
 * visiting each node once and never entering a node for which `stop` returns
 * true. Returns the nodes entered and the stopping nodes reached; at most
 * `limit` nodes of either kind are visited.
 */
export function walkGraph(
  start: Value,
  direction: "forward" | "backward",
  stop: (node: Node) => boolean,
  limit = 200,
): { entered: Set<Node>; stops: Node[] } {
  const entered = new Set<Node>();
  const stops: Node[] = [];
  const seen = new Set<Node>();
  const queue: Value[] = [start];
  while (queue.length > 0 && seen.size < limit) {
    const value = queue.shift()!;
    let next: Node[] = [];
    if (direction === "forward") next = value.uses.map((use) => use.node);
    else if (value.producer) next = [value.producer];
    for (const node of next) {
      if (seen.has(node)) continue;
      seen.add(node);
      if (stop(node)) {
        stops.push(node);
        continue;
      }
      entered.add(node);
      const values = direction === "forward" ? node.outputs : node.inputs;
      for (const each of values) if (each) queue.push(each);
    }
  }
  return { entered, stops };
}

/** Returns the stopping nodes `walkGraph` reaches from `start`. */
export function reachStops(start: Value, direction: "forward" | "backward", stop: (node: Node) => boolean, limit = 200): Node[] {
  return walkGraph(start, direction, stop, limit).stops;
}

/** Returns the shape of `value`: an initializer's dims, or the type shape that the graph declares or shape inference set. */
export function shapeOf(value: Value | undefined): Dim[] | undefined {
  if (!value) return undefined;
  if (value.initializer) return [...value.initializer.dims];
  return value.type?.kind === "tensor" ? value.type.shape : undefined;
}

/** Returns the tensor of a constant: an initializer that is not a graph input, or a Constant node's value. */
export function constantTensor(value: Value | undefined): Tensor | undefined {
  if (!value) return undefined;
  if (value.isConstant) return value.initializer;
  const producer = value.producer;
  if (producer?.opType !== "Constant") return undefined;
  const attribute = producer.attributes.get("value");
  return attribute?.type === AttributeType.TENSOR ? attribute.value : undefined;
}

/** Returns the integer elements of a constant (an initializer or a Constant node's tensor), or undefined when it is not one. */
export function constantInts(value: Value | undefined): number[] | undefined {
  const tensor = constantTensor(value);
  if (!tensor || (tensor.dtype !== DataType.INT64 && tensor.dtype !== DataType.INT32)) return undefined;
  return Array.from(tensor.data() as ArrayLike<number | bigint>, (element) => Number(element));
}

/** Ops whose inputs after the first are shapes, indices or sizes rather than data. */
const DATA_INPUT_ONLY = new Set(["Reshape", "Expand", "Slice", "Split", "Tile", "Unsqueeze", "Squeeze", "Pad", "Gather", "GatherElements", "Range", "ConstantOfShape"]);

/**
 * Visits the nodes that compute `start`, walking backward along data inputs
 * only: shape arguments (a Reshape target, Slice bounds) and Shape nodes are
 * not followed. A node for which `stop` returns true is visited but not
 * entered. At most `limit` nodes are visited.
 */
export function visitDataPathBack(start: Value, stop: (node: Node) => boolean, visit: (node: Node) => void, limit = 200): void {
  const seen = new Set<Node>();
  const queue: Value[] = [start];
  while (queue.length > 0 && seen.size < limit) {
    const node = queue.shift()!.producer;
    if (!node || seen.has(node) || node.opType === "Shape") continue;
    seen.add(node);
    visit(node);
    if (stop(node)) continue;
    const inputs = DATA_INPUT_ONLY.has(node.opType) ? node.inputs.slice(0, 1) : node.inputs;
    for (const input of inputs) if (input) queue.push(input);
  }
}
