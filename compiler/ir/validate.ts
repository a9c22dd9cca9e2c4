import { PeftcError } from "../errors";
import type { Graph } from "./graph";
import type { Model } from "./model";
import type { Node } from "./node";
import { topologicalOrder } from "./topological-sort";
import { forEachGraph, isWithin } from "./traverse";
import type { Value } from "./value";

/**
 * Domains that onnxruntime registers operators in. A model may use them
 * without importing them (onnxruntime then assumes version 1), as
 * onnxruntime's own generation models do.
 */
export const RUNTIME_DOMAINS: ReadonlySet<string> = new Set([
  "",
  "ai.onnx",
  "ai.onnx.ml",
  "ai.onnx.training",
  "ai.onnx.preview.training",
  "com.microsoft",
  "com.microsoft.nchwc",
  "com.microsoft.experimental",
  "org.pytorch.aten",
]);

type InvariantCode = "E_IR_INVARIANT" | "E_IR_UNDEFINED_VALUE" | "E_UNKNOWN_DOMAIN" | "E_ONNX_INVALID";

/**
 * Checks the IR's invariants and throws on the first broken one, naming the
 * node and value. `pass` names the rewrite that ran last, so a broken
 * invariant points at the code that broke it. Runs in time linear in the
 * size of the graph.
 */
export function validateModel(model: Model, pass?: string): void {
  const validator = new Validator(model, pass);
  validator.checkOpsets();
  validator.checkGraph(model.graph, model.opsetImports);
  for (const fn of model.functions) validator.checkGraph(fn.body, new Map([...model.opsetImports, ...fn.opsetImports]));
}

class Validator {
  private readonly functionDomains: Set<string>;
  /** Every node of every graph, to tell live nodes from removed ones. */
  private readonly liveNodes = new Set<Node>();

  constructor(
    private readonly model: Model,
    private readonly pass: string | undefined,
  ) {
    this.functionDomains = new Set(model.functions.map((fn) => fn.domain));
    forEachGraph(model.graph, (graph) => graph.nodes.forEach((node) => this.liveNodes.add(node)));
    for (const fn of model.functions) forEachGraph(fn.body, (graph) => graph.nodes.forEach((node) => this.liveNodes.add(node)));
  }

  private fail(code: InvariantCode, message: string, details: Record<string, string> = {}): never {
    throw new PeftcError(code, message + (this.pass ? ` (after pass "${this.pass}")` : ""), details);
  }

  checkOpsets(): void {
    if (!this.model.opsetImports.has("")) {
      this.fail(
        "E_ONNX_INVALID",
        "the model imports no opset for the default ONNX domain, so its operators have no defined version. Re-export it; a truncated file can also look like this.",
      );
    }
  }

  checkGraph(graph: Graph, opsets: Map<string, number>): void {
    for (const node of graph.nodes) {
      if (node.graph !== graph) this.fail("E_IR_INVARIANT", `node "${node.name}" sits in graph "${graph.name}" but belongs to "${node.graph.name}".`, { node: node.name });
      this.checkOutputs(graph, node);
      this.checkInputs(graph, node);
      this.checkDomain(node, opsets);
      for (const subgraph of node.subgraphs) {
        if (subgraph.owner !== node) this.fail("E_IR_INVARIANT", `a subgraph of node "${node.name}" records another owner.`, { node: node.name });
        this.checkGraph(subgraph, opsets);
      }
    }
    for (const value of graph.values) this.checkUses(value);
    for (const output of graph.outputs) {
      if (!output.producer && !output.isGraphInput && !output.isInitializer) {
        this.fail("E_IR_UNDEFINED_VALUE", `graph "${graph.name}" outputs "${output.name}", which nothing defines.`, { value: output.name });
      }
    }
    topologicalOrder(graph);
  }

  /**
   * Checks that an outer value a subgraph node reads is what its name
   * resolves to. A file names inputs, not links: a subgraph node reads
   * whatever the name means in its own scope. Subgraphs may shadow
   * outer names (generation decoders redefine input_ids), but then the link
   * must go to the shadowing value, or a save would silently rewire it.
   */
  private checkResolvesByName(graph: Graph, node: Node, input: Value): void {
    for (let scope: Graph | undefined = graph; scope && scope !== input.graph; scope = scope.outer) {
      if (scope.getLocal(input.name)) {
        this.fail(
          "E_IR_INVARIANT",
          `node "${node.name}" reads "${input.name}" of graph "${input.graph.name}", but graph "${scope.name}" defines its own "${input.name}", which the name would resolve to once saved.`,
          { node: node.name, value: input.name },
        );
      }
    }
  }

  private checkOutputs(graph: Graph, node: Node): void {
    node.outputs.forEach((output, index) => {
      const details = { node: node.name, value: output.name };
      if (output.producer !== node || output.producerIndex !== index) {
        this.fail("E_IR_INVARIANT", `value "${output.name}" is output ${index} of node "${node.name}" but records another producer.`, details);
      }
      if (!output.isOmitted && graph.getLocal(output.name) !== output) {
        this.fail("E_IR_INVARIANT", `value "${output.name}" of node "${node.name}" is missing from the name table of graph "${graph.name}".`, details);
      }
    });
  }

  private checkInputs(graph: Graph, node: Node): void {
    node.inputs.forEach((input, index) => {
      if (!input) return;
      const details = { node: node.name, value: input.name };
      if (!isWithin(graph, input.graph)) {
        this.fail("E_IR_UNDEFINED_VALUE", `node "${node.name}" reads "${input.name}", which is defined in graph "${input.graph.name}", out of its scope.`, details);
      }
      if (!input.producer && !input.isGraphInput && !input.isInitializer) {
        this.fail("E_IR_UNDEFINED_VALUE", `node "${node.name}" reads "${input.name}", which no node, graph input or initializer defines.`, details);
      }
      this.checkResolvesByName(graph, node, input);
      if (input.producer && !this.liveNodes.has(input.producer)) {
        this.fail("E_IR_INVARIANT", `node "${node.name}" reads "${input.name}", whose producer "${input.producer.name}" was removed from the graph.`, details);
      }
      if (input.graph.getLocal(input.name) !== input) {
        this.fail("E_IR_INVARIANT", `node "${node.name}" reads "${input.name}", which is missing from the name table of graph "${input.graph.name}".`, details);
      }
      if (input.uses[this.useIndex(input, node, index)]?.node !== node) {
        this.fail("E_IR_INVARIANT", `node "${node.name}" reads "${input.name}" at input ${index}, but the value does not list that use.`, details);
      }
    });
  }

  /** Position of use (node, index) in the value's use list, found through a per-value index built once. */
  private readonly useIndexes = new Map<Value, Map<Node, Map<number, number>>>();

  private useIndex(value: Value, node: Node, index: number): number {
    let byNode = this.useIndexes.get(value);
    if (!byNode) {
      byNode = new Map();
      value.uses.forEach((use, position) => {
        const byIndex = byNode!.get(use.node) ?? new Map<number, number>();
        byIndex.set(use.index, position);
        byNode!.set(use.node, byIndex);
      });
      this.useIndexes.set(value, byNode);
    }
    return byNode.get(node)?.get(index) ?? -1;
  }

  private checkUses(value: Value): void {
    for (const use of value.uses) {
      const details = { node: use.node.name, value: value.name };
      if (!this.liveNodes.has(use.node)) {
        this.fail("E_IR_INVARIANT", `value "${value.name}" lists a use by node "${use.node.name}", which is no longer in any graph.`, details);
      }
      if (use.node.inputs[use.index] !== value) {
        this.fail("E_IR_INVARIANT", `value "${value.name}" lists a use at input ${use.index} of node "${use.node.name}", which reads something else.`, details);
      }
    }
  }

  private checkDomain(node: Node, opsets: Map<string, number>): void {
    const domain = node.domain === "ai.onnx" ? "" : node.domain;
    if (!opsets.has(domain) && !RUNTIME_DOMAINS.has(domain) && !this.functionDomains.has(domain)) {
      this.fail(
        "E_UNKNOWN_DOMAIN",
        `node "${node.name}" (${node.opType}) uses operator domain "${node.domain}", which the model neither imports nor defines functions for, and onnxruntime does not know. Add the domain to opset_import with its custom-op library, or re-export without custom ops.`,
        { node: node.name },
      );
    }
  }
}
