import { PeftcError } from "../errors";
import type { Graph } from "./graph";
import type { Model } from "./model";
import { topologicalOrder } from "./topological-sort";
import { isWithin } from "./traverse";

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

/**
 * Checks the IR's invariants and throws on the first broken one, naming the
 * node and value. `pass` names the rewrite that ran last, so a broken
 * invariant points at the code that broke it.
 */
export function validateModel(model: Model, pass?: string): void {
  const where = pass ? ` (after pass "${pass}")` : "";
  const functionDomains = new Set(model.functions.map((fn) => fn.domain));
  const fail = (code: "E_IR_INVARIANT" | "E_IR_UNDEFINED_VALUE" | "E_UNKNOWN_DOMAIN" | "E_ONNX_INVALID", message: string, details: Record<string, string>): never => {
    throw new PeftcError(code, message + where, details);
  };

  const checkGraph = (graph: Graph, opsets: Map<string, number>): void => {
    for (const node of graph.nodes) {
      if (node.graph !== graph) fail("E_IR_INVARIANT", `node "${node.name}" sits in graph "${graph.name}" but belongs to "${node.graph.name}".`, { node: node.name });
      node.outputs.forEach((output, index) => {
        if (output.producer !== node || output.producerIndex !== index) {
          fail("E_IR_INVARIANT", `value "${output.name}" is output ${index} of node "${node.name}" but records another producer.`, {
            node: node.name,
            value: output.name,
          });
        }
        if (!output.isOmitted && graph.getLocal(output.name) !== output) {
          fail("E_IR_INVARIANT", `value "${output.name}" of node "${node.name}" is missing from the name table of graph "${graph.name}".`, {
            node: node.name,
            value: output.name,
          });
        }
      });
      node.inputs.forEach((input, index) => {
        if (!input) return;
        if (!input.uses.some((use) => use.node === node && use.index === index)) {
          fail("E_IR_INVARIANT", `node "${node.name}" reads "${input.name}" at input ${index}, but the value does not list that use.`, {
            node: node.name,
            value: input.name,
          });
        }
        if (!isWithin(graph, input.graph)) {
          fail("E_IR_UNDEFINED_VALUE", `node "${node.name}" reads "${input.name}", which is defined in graph "${input.graph.name}", out of its scope.`, {
            node: node.name,
            value: input.name,
          });
        }
        if (!input.producer && !input.isGraphInput && !input.isInitializer) {
          fail("E_IR_UNDEFINED_VALUE", `node "${node.name}" reads "${input.name}", which no node, graph input or initializer defines.`, {
            node: node.name,
            value: input.name,
          });
        }
        if (input.producer && !input.producer.graph.nodes.includes(input.producer)) {
          fail("E_IR_INVARIANT", `node "${node.name}" reads "${input.name}", whose producer "${input.producer.name}" was removed from the graph.`, {
            node: node.name,
            value: input.name,
          });
        }
      });
      const domain = node.domain === "ai.onnx" ? "" : node.domain;
      if (!opsets.has(domain) && !RUNTIME_DOMAINS.has(domain) && !functionDomains.has(domain)) {
        fail(
          "E_UNKNOWN_DOMAIN",
          `node "${node.name}" (${node.opType}) uses operator domain "${node.domain}", which the model neither imports nor defines functions for, and onnxruntime does not know. Add the domain to opset_import with its custom-op library, or re-export without custom ops.`,
          { node: node.name },
        );
      }
      for (const subgraph of node.subgraphs) {
        if (subgraph.owner !== node) fail("E_IR_INVARIANT", `a subgraph of node "${node.name}" records another owner.`, { node: node.name });
        checkGraph(subgraph, opsets);
      }
    }
    for (const value of graph.values) {
      for (const use of value.uses) {
        if (use.node.inputs[use.index] !== value) {
          fail("E_IR_INVARIANT", `value "${value.name}" lists a use at input ${use.index} of node "${use.node.name}", which reads something else.`, {
            node: use.node.name,
            value: value.name,
          });
        }
      }
    }
    for (const output of graph.outputs) {
      if (!output.producer && !output.isGraphInput && !output.isInitializer) {
        fail("E_IR_UNDEFINED_VALUE", `graph "${graph.name}" outputs "${output.name}", which nothing defines.`, { value: output.name });
      }
    }
    topologicalOrder(graph);
  };

  if (!model.opsetImports.has("")) {
    fail("E_ONNX_INVALID", `the model imports no opset for the default ONNX domain, so its operators have no defined version. Re-export it; a truncated file can also look like this.`, {});
  }
  checkGraph(model.graph, model.opsetImports);
  for (const fn of model.functions) checkGraph(fn.body, new Map([...model.opsetImports, ...fn.opsetImports]));
}
