import type { Graph } from "./graph";
import { topologicalOrder } from "./topological-sort";
import { forEachGraph } from "./traverse";
import type { Value } from "./value";

/**
 * Removes nodes whose outputs no node reads and initializers no node uses,
 * in `graph` and its subgraphs. Graph inputs are kept: they are the
 * model's interface. A value that any graph in the tree returns is live,
 * since an If branch may return a value of the graph around it. Returns
 * whether anything was removed.
 */
export function eliminateDeadCode(graph: Graph): boolean {
  const returned = new Set<Value>();
  forEachGraph(graph, (each) => each.outputs.forEach((value) => returned.add(value)));
  return eliminateIn(graph, returned);
}

function eliminateIn(graph: Graph, returned: ReadonlySet<Value>): boolean {
  let changed = false;
  // Readers come after producers, so walking backwards frees whole chains in one pass.
  const order = topologicalOrder(graph);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    const live = node.outputs.some((output) => output.uses.length > 0 || returned.has(output));
    if (!live) {
      graph.removeNode(node);
      changed = true;
      continue;
    }
    for (const subgraph of node.subgraphs) changed = eliminateIn(subgraph, returned) || changed;
  }
  for (const value of [...graph.initializers.values()]) {
    if (value.uses.length === 0 && !value.isGraphInput && !returned.has(value)) {
      graph.removeInitializer(value);
      changed = true;
    }
  }
  return changed;
}
