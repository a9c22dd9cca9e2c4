import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { LAYOUT_OPS, walkGraph } from "./graph-walk";
import type { DiscoveredModule } from "./module";
import type { ModuleIndex } from "./structure";

/**
 * Activation function between an MLP's up (or gate) and down projections.
 * `gelu` is the exact erf form, `gelu_tanh` the tanh approximation (FastGelu
 * computes it too), `quick_gelu` is x * sigmoid(alpha * x) and `silu` is
 * x * sigmoid(x).
 */
export type ActivationFunction = "gelu" | "gelu_tanh" | "quick_gelu" | "silu" | "relu" | "unknown";

/** The activation of one MLP block, read from the graph. */
export interface MlpActivation {
  function: ActivationFunction;
  /** "op" for one activation op, "decomposed" for elementwise ops; null when unknown. */
  form: "op" | "decomposed" | null;
  /** True when the activation of gate is multiplied by up (SwiGLU, GeGLU). */
  gated: boolean;
  /** Op types of the activation nodes in graph order, layout ops left out. */
  ops: string[];
  nodes: string[];
  /** The Mul of activation(gate) and up; null for an ungated block. */
  gating: string | null;
  /** Reason the function is unknown; null when it is known. */
  reason: string | null;
}

/** The Split of a fused gate_up output: which output is gate and which is up. */
export interface MlpSplit {
  node: string;
  gateOutput: number;
  upOutput: number;
}

/** One MLP block: its projections by path and the activation between them. */
export interface MlpBlock {
  layer: number | null;
  up: string | null;
  gate: string | null;
  /** The fused gate and up projection; null when they are separate. */
  gateUp: string | null;
  split: MlpSplit | null;
  down: string | null;
  activation: MlpActivation;
}

function nodeLabel(node: Node): string {
  return node.name !== "" ? node.name : `${node.opType} -> ${node.outputs[0]?.name ?? ""}`;
}

/** Returns the nodes reached from `start` along outputs (forward) or inputs (backward), not entering module nodes. */
function reachedNodes(start: Value, direction: "forward" | "backward", index: ModuleIndex, limit = 200): Set<Node> {
  return walkGraph(start, direction, (node) => index.moduleOf(node) !== undefined, limit).entered;
}

function unknown(gated: boolean, nodes: Node[], gating: Node | null, reason: string): MlpActivation {
  return { function: "unknown", form: null, gated, ops: nodes.map((node) => node.qualifiedOpType), nodes: nodes.map(nodeLabel), gating: gating && nodeLabel(gating), reason };
}

/** Fused activation ops and the function each computes. */
const ACTIVATION_OPS: Record<string, ActivationFunction> = {
  Relu: "relu",
  "com.microsoft::FastGelu": "gelu_tanh",
  "com.microsoft::BiasGelu": "gelu",
  "com.microsoft::Gelu": "gelu",
  "com.microsoft::QuickGelu": "quick_gelu",
};

function opFunction(node: Node): ActivationFunction | undefined {
  if (node.qualifiedOpType === "Gelu") {
    const approximate = node.getString("approximate", "none");
    if (approximate === "tanh") return "gelu_tanh";
    return approximate === "none" ? "gelu" : undefined;
  }
  return ACTIVATION_OPS[node.qualifiedOpType];
}

/** True when `node` multiplies `source` by `sigmoid` of `source`, looking through layout ops on every input. */
function isSiluMul(node: Node, sigmoid: Node, source: Value): boolean {
  const origin = (value: Value | undefined): Value | undefined => {
    let current = value;
    while (current?.producer && LAYOUT_OPS.has(current.producer.opType)) current = current.producer.inputs[0];
    return current;
  };
  const [a, b] = node.inputs.map(origin);
  const sigmoidOutput = sigmoid.outputs[0];
  let other: Value | undefined;
  if (a === sigmoidOutput) other = b;
  else if (b === sigmoidOutput) other = a;
  return other !== undefined && other === origin(sigmoid.inputs[0]) && other === origin(source);
}

/**
 * Names the function that `nodes` (layout ops left out, in graph order)
 * compute on `source`: one activation op, the erf or tanh form of GELU, or
 * Sigmoid times its input. Anything else is unknown.
 */
function classify(nodes: Node[], source: Value, gated: boolean, gating: Node | null): MlpActivation {
  const known = (fn: ActivationFunction, form: "op" | "decomposed"): MlpActivation => ({
    function: fn,
    form,
    gated,
    ops: nodes.map((node) => node.qualifiedOpType),
    nodes: nodes.map(nodeLabel),
    gating: gating && nodeLabel(gating),
    reason: null,
  });
  if (nodes.length === 0) return unknown(gated, nodes, gating, "no op between the projections");
  if (nodes.length === 1) {
    const fn = opFunction(nodes[0]);
    return fn ? known(fn, "op") : unknown(gated, nodes, gating, `${nodes[0].qualifiedOpType} is not a known activation`);
  }
  const ops = nodes.map((node) => node.opType);
  const only = (allowed: string[]): boolean => nodes.every((node) => node.domain === "" && allowed.includes(node.opType));
  if (ops.length === 2 && ops[0] === "Sigmoid" && ops[1] === "Mul" && isSiluMul(nodes[1], nodes[0], source)) return known("silu", "decomposed");
  if (ops.filter((op) => op === "Erf").length === 1 && only(["Erf", "Div", "Mul", "Add"])) return known("gelu", "decomposed");
  if (ops.filter((op) => op === "Tanh").length === 1 && only(["Tanh", "Pow", "Mul", "Add"])) return known("gelu_tanh", "decomposed");
  return unknown(gated, nodes, gating, `ops ${ops.join(", ")} match no known activation`);
}

function ordered(nodes: Iterable<Node>, order: Map<Node, number>): Node[] {
  return [...nodes].sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
}

/**
 * Reads the activation from `gate` (or from up in an ungated block) to the
 * input of down. For a gated block, nodes reached from both gate and up are
 * the gating product, and nodes reached from gate only are the activation.
 */
function readActivation(gate: Value, up: Value | undefined, down: Value, index: ModuleIndex, order: Map<Node, number>): MlpActivation {
  const toDown = reachedNodes(down, "backward", index);
  const fromGate = [...reachedNodes(gate, "forward", index)].filter((node) => toDown.has(node));
  const isCompute = (node: Node): boolean => !LAYOUT_OPS.has(node.opType);
  if (!up) return classify(ordered(fromGate.filter(isCompute), order), gate, false, null);

  const fromUp = reachedNodes(up, "forward", index);
  const shared = ordered(fromGate.filter((node) => fromUp.has(node) && isCompute(node)), order);
  const activation = ordered(fromGate.filter((node) => !fromUp.has(node) && isCompute(node)), order);
  const gating = shared[0] ?? null;
  if (!gating || gating.opType !== "Mul") {
    return unknown(true, activation, gating, gating ? `gate and up meet in ${gating.qualifiedOpType}, not Mul` : "gate and up do not meet before down");
  }
  return classify(activation, gate, true, gating);
}

/** Finds which Split output of a fused gate_up goes through the activation: that one is gate. */
function readSplit(gateUp: DiscoveredModule, down: Value, index: ModuleIndex, order: Map<Node, number>): { split: MlpSplit; activation: MlpActivation } | { reason: string } {
  const toDown = reachedNodes(down, "backward", index);
  const splits = [...reachedNodes(gateUp.output, "forward", index)].filter((node) => node.opType === "Split" && toDown.has(node));
  if (splits.length !== 1 || splits[0].outputs.length !== 2) return { reason: "the fused gate_up output does not reach down through one Split into two" };
  const [first, second] = splits[0].outputs;
  const computeOnly = (from: Value, other: Value): Node[] => {
    const fromOther = reachedNodes(other, "forward", index);
    return [...reachedNodes(from, "forward", index)].filter((node) => toDown.has(node) && !LAYOUT_OPS.has(node.opType) && !fromOther.has(node));
  };
  const firstOnly = computeOnly(first, second);
  const secondOnly = computeOnly(second, first);
  if ((firstOnly.length > 0) === (secondOnly.length > 0)) return { reason: "both or neither Split output goes through an activation, so gate and up are ambiguous" };
  const gateOutput = firstOnly.length > 0 ? 0 : 1;
  const [gate, up] = gateOutput === 0 ? [first, second] : [second, first];
  return { split: { node: nodeLabel(splits[0]), gateOutput, upOutput: 1 - gateOutput }, activation: readActivation(gate, up, down, index, order) };
}

/**
 * Groups the MLP projections of `modules` by layer and reads the activation
 * of each block. A layer with more than one module of a role, or without
 * down, gets an unknown activation with the reason.
 */
export function describeMlp(modules: readonly DiscoveredModule[], index: ModuleIndex, order: Map<Node, number>): MlpBlock[] {
  const byLayer = new Map<number | null, DiscoveredModule[]>();
  for (const module of modules) {
    if (!module.role?.startsWith("mlp.")) continue;
    const list = byLayer.get(module.layer) ?? [];
    list.push(module);
    byLayer.set(module.layer, list);
  }
  const blocks: MlpBlock[] = [];
  for (const [layer, list] of byLayer) {
    const ofRole = (role: string): DiscoveredModule[] => list.filter((module) => module.role === role);
    const [ups, gates, gateUps, downs] = ["mlp.up", "mlp.gate", "mlp.gate_up", "mlp.down"].map(ofRole);
    const block: MlpBlock = {
      layer,
      up: ups[0]?.path ?? null,
      gate: gates[0]?.path ?? null,
      gateUp: gateUps[0]?.path ?? null,
      split: null,
      down: downs[0]?.path ?? null,
      activation: unknown(false, [], null, ""),
    };
    blocks.push(block);
    if ([ups, gates, gateUps, downs].some((each) => each.length > 1)) {
      block.activation.reason = "the layer has more than one MLP module of a role";
      continue;
    }
    const down = downs[0]?.input;
    if (!down) {
      block.activation.reason = "the layer has no down projection";
      continue;
    }
    if (gateUps.length === 1 && ups.length === 0 && gates.length === 0) {
      const read = readSplit(gateUps[0], down, index, order);
      if ("reason" in read) block.activation = unknown(true, [], null, read.reason);
      else Object.assign(block, read);
    } else if (gates.length === 1 && ups.length === 1 && gateUps.length === 0) {
      block.activation = readActivation(gates[0].output, ups[0].output, down, index, order);
    } else if (ups.length === 1 && gates.length === 0 && gateUps.length === 0) {
      block.activation = readActivation(ups[0].output, undefined, down, index, order);
    } else {
      block.activation.reason = "the layer has no up, gate and up, or fused gate_up projection";
    }
  }
  blocks.sort((a, b) => (a.layer ?? Infinity) - (b.layer ?? Infinity));
  return blocks;
}
