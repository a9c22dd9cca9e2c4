import { PeftcError } from "../errors";
import { type Attribute, attributeGraphs } from "./attribute";
import type { Graph } from "./graph";
import { defaultAttribute } from "./infer/function-attributes";
import type { Model, ModelFunction } from "./model";
import type { Node } from "./node";
import { topologicalOrder } from "./topological-sort";
import type { Value } from "./value";

/** Nesting depth past which a chain of calls counts as recursion. */
const MAX_CALL_DEPTH = 64;

/** Returns the model-local function that `node` calls, or undefined for an operator. */
export function calledFunction(model: Model, node: Node): ModelFunction | undefined {
  return model.findFunction(node.domain, node.opType, node.overload ?? "");
}

/**
 * Replaces each of `calls` (nodes of `model`'s graphs that call a
 * model-local function) by a copy of the function's body, and does the same
 * for calls nested in those bodies. Body values and nodes get new names
 * under the call's name, and formal inputs read the call's inputs.
 * Attribute references (`ref_attr_name`) take the call's attribute or the
 * function's default. The call's output values keep their names, so graph
 * outputs and later readers are unchanged. The functions stay in
 * `model.functions`.
 * Returns, for each call output that was read, the value that now stands
 * for it, so a caller holding the old Value objects can switch to the new ones.
 *
 * Raises E_UNKNOWN_DOMAIN when a body imports a domain at a version other
 * than the model's, because the inlined nodes would then run under the
 * model's version, and E_IR_INVARIANT for bodies with subgraphs or for
 * recursive calls.
 */
export function inlineFunctionCalls(model: Model, calls: readonly Node[]): Map<Value, Value> {
  const replaced = new Map<Value, Value>();
  for (const call of calls) inlineCall(model, call, 0, replaced);
  // A nested call's output may replace a value that itself replaced a top-level call's output.
  for (const [old, next] of replaced) {
    let current = next;
    while (replaced.has(current)) current = replaced.get(current)!;
    replaced.set(old, current);
  }
  return replaced;
}

/** Inlines every call to a model-local function in `model`'s main graph, as inlineFunctionCalls does. */
export function inlineAllFunctionCalls(model: Model): Map<Value, Value> {
  return inlineFunctionCalls(model, model.graph.nodes.filter((node) => calledFunction(model, node) !== undefined));
}

function inlineCall(model: Model, call: Node, depth: number, replaced: Map<Value, Value>): void {
  const fn = calledFunction(model, call);
  if (!fn) throw new PeftcError("E_IR_INVARIANT", `node "${call.name}" (${call.qualifiedOpType}) does not call a model-local function, so it cannot be inlined.`, { node: call.name });
  if (depth >= MAX_CALL_DEPTH) {
    throw new PeftcError("E_IR_INVARIANT", `function ${fn.domain}::${fn.name}: calls nest more than ${MAX_CALL_DEPTH} deep at node "${call.name}". Recursive functions cannot be inlined.`, { node: call.name });
  }
  importOpsets(model, fn);
  const graph = call.graph;
  const mapped = new Map<Value, Value | undefined>();
  fn.body.inputs.forEach((formal, index) => mapped.set(formal, call.inputs[index]));

  const created: Node[] = [];
  for (const bodyNode of topologicalOrder(fn.body)) {
    if (bodyNode.subgraphs.length > 0) {
      throw new PeftcError(
        "E_IR_INVARIANT",
        `function ${fn.domain}::${fn.name}: body node "${bodyNode.name}" (${bodyNode.qualifiedOpType}) holds a subgraph, which inlining does not copy. Inline the function with onnx.inliner before loading the model.`,
        { node: bodyNode.name },
      );
    }
    const inputs = bodyNode.inputs.map((input) => (input ? lookupMapped(mapped, input, fn) : undefined));
    const copy = graph.addNode(
      {
        opType: bodyNode.opType,
        domain: bodyNode.domain,
        name: `${call.name}/${bodyNode.name}`,
        inputs,
        // An omitted optional output becomes a named value that no node reads, which leaves the op's result unchanged.
        outputs: bodyNode.outputs.map((output) => `${call.name}/${output.isOmitted ? "unused" : output.name}`),
        attributes: resolveAttributes(bodyNode, call, fn),
      },
      { before: call },
    );
    copy.overload = bodyNode.overload;
    bodyNode.outputs.forEach((output, index) => {
      copy.outputs[index].type = output.type;
      if (!output.isOmitted) mapped.set(output, copy.outputs[index]);
    });
    created.push(copy);
  }

  // Each call output takes over a fresh value of the body, so an output that is a formal input or repeats another gets an Identity.
  const claimed = new Set<Value>();
  const createdSet = new Set(created);
  const results = call.outputs.map((output, index) => {
    const formal = fn.body.outputs[index];
    if (output.isOmitted || !formal) return undefined;
    let result = lookupMapped(mapped, formal, fn);
    if (!result) throw new PeftcError("E_IR_INVARIANT", `function ${fn.domain}::${fn.name}: output ${index} of node "${call.name}" is bound to an omitted input.`, { node: call.name });
    if (!result.producer || !createdSet.has(result.producer) || claimed.has(result)) {
      const identity = graph.addNode({ opType: "Identity", name: `${call.name}/output_${index}`, inputs: [result] }, { before: call });
      created.push(identity);
      result = identity.outputs[0];
    }
    claimed.add(result);
    return result;
  });
  call.outputs.forEach((output, index) => {
    const result = results[index];
    if (!result) return;
    result.type = output.type ?? result.type;
    output.replaceAllUsesWith(result);
    graph.swapNames(output, result);
    replaced.set(output, result);
  });
  graph.removeNode(call);

  for (const node of created) if (calledFunction(model, node)) inlineCall(model, node, depth + 1, replaced);
}

function lookupMapped(mapped: ReadonlyMap<Value, Value | undefined>, value: Value, fn: ModelFunction): Value | undefined {
  if (!mapped.has(value)) {
    throw new PeftcError("E_IR_UNDEFINED_VALUE", `function ${fn.domain}::${fn.name}: its body reads "${value.name}", which no formal input or earlier body node defines.`, { value: value.name });
  }
  return mapped.get(value);
}

/**
 * Copies a body node's attributes. A reference to a function attribute takes
 * the call's value, else the function's default. With neither, ONNX leaves
 * the attribute unset, so it is dropped.
 */
function resolveAttributes(bodyNode: Node, call: Node, fn: ModelFunction): Attribute[] {
  const attributes: Attribute[] = [];
  for (const attribute of bodyNode.attributes.values()) {
    if (attribute.refAttrName === undefined) {
      attributes.push(attribute);
      continue;
    }
    const source = call.attributes.get(attribute.refAttrName) ?? defaultAttribute(fn, attribute.refAttrName);
    if (!source) continue;
    if (attributeGraphs(source).length > 0) {
      throw new PeftcError("E_IR_INVARIANT", `function ${fn.domain}::${fn.name}: attribute "${attribute.name}" of body node "${bodyNode.name}" refers to a graph attribute, which inlining does not copy.`, { node: call.name });
    }
    const { refAttrName: _unused, ...rest } = source;
    attributes.push({ ...rest, name: attribute.name } as Attribute);
  }
  return attributes;
}

/** Adds the function's opset imports the model lacks; a domain imported at another version cannot be inlined. */
function importOpsets(model: Model, fn: ModelFunction): void {
  for (const [domain, version] of fn.opsetImports) {
    const modelVersion = model.opsetVersion(domain);
    if (modelVersion === undefined) {
      model.opsetImports.set(domain, version);
      continue;
    }
    if (modelVersion !== version && bodyUsesDomain(fn.body, domain)) {
      throw new PeftcError(
        "E_UNKNOWN_DOMAIN",
        `function ${fn.domain}::${fn.name} imports ${domain || "ai.onnx"} version ${version}, but the model imports version ${modelVersion}; its body cannot be inlined without converting its nodes. Export the model with one opset version for both.`,
        { op: `${fn.domain}::${fn.name}` },
      );
    }
  }
}

function bodyUsesDomain(body: Graph, domain: string): boolean {
  const normalize = (name: string): string => (name === "ai.onnx" ? "" : name);
  return body.nodes.some((node) => normalize(node.domain) === normalize(domain));
}
