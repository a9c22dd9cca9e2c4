import type { Graph } from "./graph";
import { topologicalOrder } from "./topological-sort";

/**
 * Removes nodes whose outputs no node reads and initializers no node uses,
 * in `graph` and its subgraphs. Graph inputs are kept: they are the
 * model's interface. Returns whether anything was removed.
 */
export function eliminateDeadCode(graph: Graph): boolean {
  let changed = false;
  // Readers come after producers, so walking backwards frees whole chains in one pass.
  const order = topologicalOrder(graph);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    for (const subgraph of node.subgraphs) changed = eliminateDeadCode(subgraph) || changed;
    const live = node.outputs.some((output) => output.uses.length > 0 || output.isGraphOutput);
    if (!live) {
      graph.removeNode(node);
      changed = true;
    }
  }
  for (const value of [...graph.initializers.values()]) {
    if (value.uses.length === 0 && !value.isGraphInput && !value.isGraphOutput) {
      graph.removeInitializer(value);
      changed = true;
    }
  }
  return changed;
}
