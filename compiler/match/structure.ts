import type { Model } from "../ir/model";
import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { LAYOUT_OPS, reachStops } from "./graph-walk";
import type { MatchedModule, Role } from "./module";

/** Fused attention ops whose inputs 0, 1 and 2 are the query, key and value. */
export const FUSED_QKV_ATTENTION = new Set(["com.microsoft::MultiHeadAttention", "com.microsoft::GroupQueryAttention", "Attention"]);
/** Fused attention ops that project Q, K and V themselves from input 0 with a packed weight. */
export const FUSED_PACKED_ATTENTION = new Set(["com.microsoft::Attention"]);
const ACTIVATIONS = new Set(["Sigmoid", "Relu", "Gelu", "Tanh", "Erf", "Silu", "com.microsoft::FastGelu", "com.microsoft::BiasGelu", "com.microsoft::Gelu", "com.microsoft::QuickGelu"]);

/** One attention core: the op that mixes tokens, and the linears that feed and follow it. */
export interface AttentionAnchor {
  /** The Softmax of a decomposed core, or the fused attention op. */
  node: Node;
  /** The Q·Kᵀ MatMul of a decomposed core. */
  scores?: Node;
  /** The MatMul of the attention weights with V in a decomposed core. */
  context?: Node;
  q: MatchedModule[];
  k: MatchedModule[];
  v: MatchedModule[];
  o: MatchedModule[];
}

/** Lookup of matched modules by the nodes they consist of. */
export class ModuleIndex {
  private readonly byNode = new Map<Node, MatchedModule>();

  constructor(readonly modules: readonly MatchedModule[]) {
    for (const module of modules) for (const node of module.nodes) if (!this.byNode.has(node)) this.byNode.set(node, module);
  }

  moduleOf(node: Node): MatchedModule | undefined {
    return this.byNode.get(node);
  }

  /** Linears reached from `value` without crossing another module, a Softmax or an activation-by-activation MatMul. */
  linearsReached(value: Value | undefined, direction: "forward" | "backward"): MatchedModule[] {
    if (!value) return [];
    const stops = reachStops(value, direction, (node) => this.byNode.has(node) || isMixingOp(node));
    const found: MatchedModule[] = [];
    for (const node of stops) {
      const module = this.byNode.get(node);
      if (module?.kind === "linear" && !found.includes(module)) found.push(module);
    }
    return found;
  }
}

function isMixingOp(node: Node): boolean {
  return node.opType === "Softmax" || node.opType === "MatMul" || node.opType === "FusedMatMul" || FUSED_QKV_ATTENTION.has(node.qualifiedOpType) || FUSED_PACKED_ATTENTION.has(node.qualifiedOpType);
}

/** Finds the MatMul that a Softmax output reaches first: the product with V. */
function contextMatMul(softmax: Node): Node | undefined {
  const stops = reachStops(softmax.outputs[0], "forward", (node) => node.opType === "MatMul" || node.opType === "FusedMatMul", 20);
  return stops.length === 1 ? stops[0] : undefined;
}

/** Finds the MatMul of Q and Kᵀ that feeds a Softmax. */
function scoresMatMul(softmax: Node): Node | undefined {
  const stops = reachStops(softmax.inputs[0]!, "backward", (node) => node.opType === "MatMul" || node.opType === "FusedMatMul" || node.opType === "Softmax", 20);
  const matmuls = stops.filter((node) => node.opType !== "Softmax");
  return matmuls.length === 1 ? matmuls[0] : undefined;
}

/**
 * Returns the `domain::name` keys of the model-local functions whose body
 * contains a decomposed attention core, such as the exporter's scaled dot
 * product attention function. A call to one is a fused core with query, key
 * and value as inputs 0, 1 and 2.
 */
// NOTE: inputs 0, 1 and 2 are read as query, key and value because torch's
// scaled_dot_product_attention takes them in that order. A function with
// another input order would mislabel the projections.
export function attentionFunctions(model: Model): Set<string> {
  const found = new Set<string>();
  for (const fn of model.functions) {
    const core = fn.body.nodes.some((node) => node.opType === "Softmax" && node.domain === "" && scoresMatMul(node) !== undefined && contextMatMul(node) !== undefined);
    if (core && fn.body.inputs.length >= 3) found.add(`${fn.domain}::${fn.name}`);
  }
  return found;
}

/**
 * Finds decomposed (Softmax between two MatMuls) and fused attention cores,
 * with the linears around them. `functions` lists the model-local functions
 * that are attention cores (see attentionFunctions).
 */
export function findAttention(nodes: readonly Node[], index: ModuleIndex, functions: ReadonlySet<string> = new Set()): AttentionAnchor[] {
  const anchors: AttentionAnchor[] = [];
  for (const node of nodes) {
    const functionCore = functions.has(`${node.domain}::${node.opType}`);
    if (node.opType === "Softmax" && node.domain === "") {
      const scores = scoresMatMul(node);
      const context = contextMatMul(node);
      if (!scores || !context || index.moduleOf(scores) || index.moduleOf(context)) continue;
      anchors.push({
        node,
        scores,
        context,
        q: index.linearsReached(scores.inputs[0], "backward"),
        k: index.linearsReached(scores.inputs[1], "backward"),
        v: index.linearsReached(context.inputs[1], "backward"),
        o: index.linearsReached(context.outputs[0], "forward"),
      });
    } else if (FUSED_QKV_ATTENTION.has(node.qualifiedOpType) || functionCore) {
      const [q, k, v] = [0, 1, 2].map((i) => index.linearsReached(node.inputs[i], "backward"));
      anchors.push({ node, q, k, v, o: index.linearsReached(node.outputs[0], "forward") });
    } else if (FUSED_PACKED_ATTENTION.has(node.qualifiedOpType)) {
      // The packed QKV projection is the Attention node itself (see packed-attention.ts).
      const packed = index.moduleOf(node);
      const qkv = packed?.kind === "linear" ? [packed] : [];
      anchors.push({ node, q: qkv, k: qkv, v: qkv, o: index.linearsReached(node.outputs[0], "forward") });
    }
  }
  return anchors;
}

/** Roles of the projections around one attention core; a side fed by several linears is left out. */
export function attentionRoles(anchor: AttentionAnchor): Map<MatchedModule, Role> {
  const roles = new Map<MatchedModule, Role>();
  const [q, k, v] = [anchor.q, anchor.k, anchor.v].map((side) => (side.length === 1 ? side[0] : undefined));
  if (q && q === k && k === v) roles.set(q, "attn.qkv");
  else if (q && k && v && new Set([q, k, v]).size === 3) {
    roles.set(q, "attn.q");
    roles.set(k, "attn.k");
    roles.set(v, "attn.v");
  }
  if (anchor.o.length === 1 && !roles.has(anchor.o[0])) roles.set(anchor.o[0], "attn.o");
  return roles;
}

/** True when `module`'s output reaches an activation op within two nodes. */
function feedsActivation(module: MatchedModule): boolean {
  let frontier = [module.output];
  for (let depth = 0; depth < 2; depth++) {
    const next: Value[] = [];
    for (const value of frontier) {
      for (const { node } of value.uses) {
        if (ACTIVATIONS.has(node.qualifiedOpType)) return true;
        next.push(...node.outputs);
      }
    }
    frontier = next;
  }
  return false;
}

/**
 * Gives MLP roles to the linears of one layer that attention did not claim.
 * A linear that reaches another linear of the layer is up, and the one it
 * reaches is down. When two linears feed the same down, the one that goes
 * through an activation is gate.
 */
export function mlpRoles(candidates: readonly MatchedModule[], index: ModuleIndex): Map<MatchedModule, Role> {
  const roles = new Map<MatchedModule, Role>();
  const feeders = new Map<MatchedModule, MatchedModule[]>();
  for (const module of candidates) {
    const reached = index.linearsReached(module.output, "forward").filter((other) => candidates.includes(other) && other !== module);
    if (reached.length !== 1) continue;
    const list = feeders.get(reached[0]) ?? [];
    list.push(module);
    feeders.set(reached[0], list);
  }
  for (const [down, list] of feeders) {
    if (list.length === 1) {
      roles.set(list[0], "mlp.up");
    } else if (list.length === 2) {
      const gated = list.filter(feedsActivation);
      if (gated.length !== 1) continue;
      roles.set(gated[0], "mlp.gate");
      roles.set(list.find((module) => module !== gated[0])!, "mlp.up");
    } else {
      continue;
    }
    roles.set(down, "mlp.down");
  }
  return roles;
}

/** True when `value` reaches a graph output through layout ops, Add and Cast only. */
export function reachesGraphOutput(value: Value): boolean {
  let frontier = [value];
  for (let depth = 0; depth < 6; depth++) {
    if (frontier.some((each) => each.graph.isReturned(each))) return true;
    const next: Value[] = [];
    for (const each of frontier) for (const { node } of each.uses) if (LAYOUT_OPS.has(node.opType) || node.opType === "Add") next.push(...node.outputs);
    frontier = next;
  }
  return false;
}
