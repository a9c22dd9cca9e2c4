import { PeftcError } from "../errors";
import { inferShapes } from "../ir/infer";
import { calledFunction, inlineFunctionCalls } from "../ir/inline-functions";
import type { Model } from "../ir/model";
import type { Node } from "../ir/node";
import { topologicalOrder } from "../ir/topological-sort";
import type { Value } from "../ir/value";
import { isFloatType } from "../onnx/dtype";
import { planSegments, recomputeSegment } from "./checkpoint";
import { GradBuilder } from "./grad-builder";
import { GradientPartials } from "./partials";
import { gradientRule } from "./rules";

export interface BackwardOptions {
  /** Name prefix of the backward nodes and constants. Default `/grad`. */
  prefix?: string;
  /**
   * Activation checkpoints: values in forward order (the residual stream
   * entering each layer, then the final norm's input). The backward pass of
   * the nodes between two of them reads a recomputed copy of those nodes
   * instead of keeping the forward activations alive (see checkpoint.ts).
   */
  checkpoints?: readonly Value[];
}

/**
 * Appends the reverse-mode backward pass of `model`'s main graph and
 * returns the gradient of each tensor in `wrt`.
 *
 * `seeds` gives the gradient of the loss with respect to some forward
 * values (the loss itself with a gradient of one, or the logits with a
 * loss's closed-form gradient). Only nodes on a path from a `wrt` tensor to
 * a seeded value are differentiated, so frozen weights get no gradient and
 * the layers below the lowest trainable tensor get no backward at all.
 * Integer and boolean values never carry gradients. Partial gradients of a
 * value read by several nodes are summed, so a tensor used twice (a tied
 * embedding and head) gets one gradient. A `wrt` tensor the seeds do not
 * depend on gets zeros. Calls to model-local functions on that path are
 * inlined first (and the model's shapes inferred again), so their bodies are
 * differentiated node by node.
 */
export function buildBackward(model: Model, seeds: ReadonlyMap<Value, Value>, wrt: readonly Value[], options: BackwardOptions = {}): Map<Value, Value> {
  let checkpoints = options.checkpoints ?? [];
  const graph = model.graph;
  const b = new GradBuilder(graph, model.opsetVersion("") ?? 0, options.prefix ?? "/grad");
  if (b.opset < 13) {
    throw new PeftcError("E_TRAINING_GRAPH", `model: training graphs need default-domain opset 13 or later (axes as inputs); this model imports opset ${b.opset}. Re-export it with opset_version=13 or later.`);
  }
  let order = topologicalOrder(graph);
  let dependsOnWrt = forwardReach(order, wrt);
  let active = activeNodes(order, seeds, dependsOnWrt);
  const calls = [...active].filter((node) => calledFunction(model, node) !== undefined);
  if (calls.length > 0) {
    // The inlined calls' outputs are new Value objects under the old names, so seeds and checkpoints move to them.
    const replaced = inlineFunctionCalls(model, calls);
    const current = (value: Value): Value => replaced.get(value) ?? value;
    seeds = new Map([...seeds].map(([value, grad]) => [current(value), current(grad)]));
    checkpoints = checkpoints.map(current);
    inferShapes(model);
    order = topologicalOrder(graph);
    dependsOnWrt = forwardReach(order, wrt);
    active = activeNodes(order, seeds, dependsOnWrt);
  }

  const partials = new GradientPartials(b);
  const addPartial = (value: Value, grad: Value): void => partials.add(value, grad);
  for (const [value, grad] of seeds) addPartial(value, grad);
  const total = (value: Value): Value | undefined => partials.total(value);

  const segments = planSegments(order, checkpoints);
  const copies = new Map<Node, Node>();
  const recomputed = new Set<number>();

  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (!active.has(node)) continue;
    const outputGrads = node.outputs.map((output) => (output.isOmitted ? undefined : total(output)));
    if (outputGrads.every((grad) => grad === undefined)) continue;
    const rule = gradientRule(node);
    if (!rule) throw missingRule(node, dependsOnWrt, wrt);
    b.scope = node.name;
    const segment = segments.segmentOf.get(node);
    if (segment !== undefined && !recomputed.has(segment)) {
      // The first node of a segment met in reverse order is the one that makes its end, so the end's gradient is complete.
      recomputed.add(segment);
      const trigger = total(segments.ends[segment]);
      if (trigger) for (const [original, copy] of recomputeSegment(b, segments.nodes[segment], segments.starts[segment], trigger)) copies.set(original, copy);
    }
    const needsGrad = (index: number): boolean => {
      const input = node.inputs[index];
      return input !== undefined && !input.isOmitted && dependsOnWrt.has(input) && isFloatValue(input);
    };
    // A recomputed copy has the same inputs and outputs by index, so the rule reads its values instead of the forward pass's.
    const inputGrads = rule({ node: copies.get(node) ?? node, b, outputGrads, needsGrad });
    node.inputs.forEach((input, index) => {
      const grad = inputGrads[index];
      if (grad && input && needsGrad(index)) addPartial(input, grad);
    });
  }
  b.scope = "";

  const grads = new Map<Value, Value>();
  for (const value of wrt) grads.set(value, total(value) ?? b.typed(b.zerosLike(value), value));
  return grads;
}

/**
 * True for values that can carry a gradient. A value shape inference left
 * untyped counts as float, so the backward pass reaches it and its rule
 * fails loudly on the unknown type, instead of the trainable tensors above it
 * silently getting zeros.
 */
function isFloatValue(value: Value): boolean {
  if (value.type?.kind === "tensor") return isFloatType(value.type.elemType);
  if (value.initializer) return isFloatType(value.initializer.dtype);
  return true;
}

/** Float values computed from a `wrt` tensor; integer and boolean results end a path because they carry no gradient. */
function forwardReach(order: readonly Node[], wrt: readonly Value[]): Set<Value> {
  const reached = new Set<Value>(wrt);
  for (const node of order) {
    if (!node.inputs.some((input) => input !== undefined && reached.has(input))) continue;
    for (const output of node.outputs) if (!output.isOmitted && isFloatValue(output)) reached.add(output);
  }
  return reached;
}

/** Nodes that read a value depending on `wrt` and lead to a seeded value. */
function activeNodes(order: readonly Node[], seeds: ReadonlyMap<Value, Value>, dependsOnWrt: ReadonlySet<Value>): Set<Node> {
  const needed = new Set<Value>(seeds.keys());
  const active = new Set<Node>();
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (!node.outputs.some((output) => needed.has(output))) continue;
    if (!node.inputs.some((input) => input !== undefined && dependsOnWrt.has(input))) continue;
    active.add(node);
    for (const input of node.inputs) if (input && dependsOnWrt.has(input)) needed.add(input);
  }
  return active;
}

/** The error for an op without a gradient rule: names the op, the node and the path from a trainable tensor to it. */
function missingRule(node: Node, dependsOnWrt: ReadonlySet<Value>, wrt: readonly Value[]): PeftcError {
  const path: string[] = [];
  let value = node.inputs.find((input) => input !== undefined && dependsOnWrt.has(input));
  const trainable = new Set(wrt);
  while (value && !trainable.has(value) && path.length < 50) {
    const producer = value.producer;
    if (!producer) break;
    path.unshift(`${producer.opType} "${producer.name}"`);
    value = producer.inputs.find((input) => input !== undefined && dependsOnWrt.has(input));
  }
  const start = value && trainable.has(value) ? `trainable tensor "${value.name}"` : "a trainable tensor";
  const route = [start, ...path, `${node.qualifiedOpType} "${node.name}"`].join(" → ");
  return new PeftcError(
    "E_TRAINING_GRAPH",
    `no gradient rule for ${node.qualifiedOpType} (node "${node.name}"), which lies between a trainable tensor and the loss: ${route}. Freeze the layers before it, or report the op so a rule can be added.`,
    { node: node.name, op: node.qualifiedOpType },
  );
}
