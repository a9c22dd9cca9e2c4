import { PeftcError } from "../errors";
import type { Graph } from "./graph";
import type { Node } from "./node";
import { forEachGraph, readsOf } from "./traverse";

/**
 * Returns the nodes of `graph` in an order where every producer comes before
 * its readers. Among nodes that are ready at the same time the file order is
 * kept, so an already sorted graph comes back unchanged. A cycle raises
 * E_IR_CYCLE naming the nodes on it.
 */
export function topologicalOrder(graph: Graph): Node[] {
  const position = new Map<Node, number>();
  graph.nodes.forEach((node, i) => position.set(node, i));
  const pending = new Map<Node, number>();
  const readers = new Map<Node, Node[]>();
  for (const node of graph.nodes) {
    const producers = new Set<Node>();
    for (const value of readsOf(node)) {
      const producer = value.producer;
      if (producer && producer.graph === graph && producer !== node) producers.add(producer);
      if (producer === node) throw cycleError(graph, [node]);
    }
    pending.set(node, producers.size);
    for (const producer of producers) {
      const list = readers.get(producer) ?? [];
      list.push(node);
      readers.set(producer, list);
    }
  }

  // A binary heap on file position keeps the output deterministic and stable.
  const ready = new MinHeap<Node>((a, b) => position.get(a)! - position.get(b)!);
  for (const node of graph.nodes) if (pending.get(node) === 0) ready.push(node);
  const order: Node[] = [];
  while (ready.size > 0) {
    const node = ready.pop()!;
    order.push(node);
    for (const reader of readers.get(node) ?? []) {
      const left = pending.get(reader)! - 1;
      pending.set(reader, left);
      if (left === 0) ready.push(reader);
    }
  }
  if (order.length < graph.nodes.length) {
    const stuck = graph.nodes.filter((node) => pending.get(node)! > 0);
    throw cycleError(graph, findCycle(stuck));
  }
  return order;
}

/** Reorders the node lists of `graph` and its subgraphs; returns whether anything moved. */
export function topologicalSort(graph: Graph): boolean {
  let changed = false;
  forEachGraph(graph, (each) => {
    const order = topologicalOrder(each);
    if (order.some((node, i) => node !== each.nodes[i])) {
      each.nodes.splice(0, each.nodes.length, ...order);
      changed = true;
    }
  });
  return changed;
}

function cycleError(graph: Graph, cycle: Node[]): PeftcError {
  const names = cycle.map((node) => `"${node.name || node.opType}" (${node.opType})`).join(" -> ");
  return new PeftcError(
    "E_IR_CYCLE",
    `graph "${graph.name}" has a cycle: ${names}${cycle.length > 1 ? " -> back to the first" : " reads its own output"}. ONNX graphs must be acyclic; re-export the model.`,
    { node: cycle[0]?.name },
  );
}

/** Walks producer links among `stuck` nodes until one repeats, and returns that loop. */
function findCycle(stuck: Node[]): Node[] {
  const inStuck = new Set(stuck);
  const path: Node[] = [];
  const seenAt = new Map<Node, number>();
  let current: Node | undefined = stuck[0];
  while (current && !seenAt.has(current)) {
    seenAt.set(current, path.length);
    path.push(current);
    current = readsOf(current)
      .map((value) => value.producer)
      .find((producer): producer is Node => producer !== undefined && inStuck.has(producer));
  }
  if (!current) return stuck.slice(0, 1);
  return path.slice(seenAt.get(current)).reverse();
}

class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly compare: (a: T, b: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.compare(items[i], items[parent]) >= 0) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < items.length && this.compare(items[left], items[smallest]) < 0) smallest = left;
        if (right < items.length && this.compare(items[right], items[smallest]) < 0) smallest = right;
        if (smallest === i) break;
        [items[i], items[smallest]] = [items[smallest], items[i]];
        i = smallest;
      }
    }
    return top;
  }
}
