import type { Graph } from "./graph";
import type { Node } from "./node";
import type { Value } from "./value";

/** Calls `visit` on every graph: `graph` itself, then each subgraph, depth first. */
export function forEachGraph(graph: Graph, visit: (graph: Graph) => void): void {
  visit(graph);
  for (const node of graph.nodes) for (const subgraph of node.subgraphs) forEachGraph(subgraph, visit);
}

/** Counts nodes of a graph and all its subgraphs. */
export function countNodes(graph: Graph): number {
  let count = 0;
  forEachGraph(graph, (each) => (count += each.nodes.length));
  return count;
}

/**
 * Returns the values a node reads, including those its subgraphs read from
 * enclosing scopes: an If or Loop depends on them as much as on its inputs.
 */
export function readsOf(node: Node): Value[] {
  const reads: Value[] = [];
  for (const input of node.inputs) if (input) reads.push(input);
  for (const subgraph of node.subgraphs) collectOuterReads(subgraph, reads);
  return reads;
}

function collectOuterReads(subgraph: Graph, reads: Value[]): void {
  forEachGraph(subgraph, (graph) => {
    for (const node of graph.nodes) {
      for (const input of node.inputs) if (input && !isWithin(input.graph, subgraph)) reads.push(input);
    }
    for (const output of graph.outputs) if (!isWithin(output.graph, subgraph)) reads.push(output);
  });
}

/** True when `graph` is `ancestor` or nested inside it. */
export function isWithin(graph: Graph, ancestor: Graph): boolean {
  for (let current: Graph | undefined = graph; current; current = current.outer) if (current === ancestor) return true;
  return false;
}
