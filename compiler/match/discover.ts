import type { Model } from "../ir/model";
import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { matchEmbedding, matchFusedEmbeddings } from "./embedding";
import { allGraphs, elementCount, floatParameter, orderNodes } from "./graph-walk";
import { isMatch, matchLinear } from "./linear";
import type { DiscoveredModule, MatchedModule, Unrecognised } from "./module";
import { type NameReading, candidateNames, readNames } from "./naming";
import { matchDecomposedNorm, matchFusedNorm } from "./norm";
import { matchPackedAttention } from "./packed-attention";
import { placeModules } from "./placement";
import { type AttentionBlock, describeAttention } from "./attention";
import { type MlpBlock, describeMlp } from "./mlp";
import { ModuleIndex, attentionFunctions, findAttention } from "./structure";
import { inferShapes } from "../ir/infer";

/** Path leaves of the norm slots that sit outside the layers. */
const PATH_LEAVES: Record<string, string> = { final_norm: "norm", embed_norm: "embed.norm", head_norm: "head.norm" };

/** Modules found in a model, and what looked like a module or parameter but was not understood. */
export interface Discovery {
  modules: DiscoveredModule[];
  unrecognised: Unrecognised[];
  /** Attention blocks in graph order, with head counts, rotary embedding and fused QKV layout. */
  attention: AttentionBlock[];
  /** MLP blocks by layer, with their projections and the activation read from the graph. */
  mlp: MlpBlock[];
}

/** Runs every matcher on every node of the model, its subgraphs included. Each node joins at most one module. */
export function matchAll(model: Model, order: Map<Node, number>): MatchedModule[] {
  const found: MatchedModule[] = [];
  const claimed = new Set<Node>();
  const nodes = allGraphs(model.graph).flatMap((graph) => graph.nodes);
  nodes.sort((a, b) => order.get(a)! - order.get(b)!);
  for (const node of nodes) {
    if (claimed.has(node)) continue;
    const candidates = [matchLinear(node), matchPackedAttention(node), matchEmbedding(node), matchFusedNorm(node), matchDecomposedNorm(node)].filter(isMatch);
    candidates.push(...matchFusedEmbeddings(node));
    for (const module of candidates) {
      if (module.nodes.some((each) => each !== node && claimed.has(each))) continue;
      found.push(module);
    }
    for (const module of candidates) for (const each of module.nodes) claimed.add(each);
  }
  return found;
}

/**
 * Finds the linear layers, embeddings, norms, attention and MLP blocks of `model`,
 * and gives each module a canonical path and role from the names the exporter
 * kept, or from the structure of the graph where names are missing. Runs
 * shape inference first, which refines the value types of `model` in place,
 * because head counts are read from inferred shapes.
 */
export function discoverModules(model: Model): Discovery {
  inferShapes(model);
  const order = orderNodes(model.graph);
  const matched = matchAll(model, order);
  // A weight read by two modules of the same kind (the norm weights that
  // onnxruntime's optimizer de-duplicates across layers) names neither. A
  // tied embedding and head are of different kinds, and the name patterns of
  // each kind tell them apart.
  const weightUses = new Map<string, number>();
  const useKey = (module: MatchedModule): string => `${module.kind}:${module.weight!.value.name}`;
  for (const module of matched) if (module.weight) weightUses.set(useKey(module), (weightUses.get(useKey(module)) ?? 0) + 1);
  const isShared = (module: MatchedModule): boolean => module.weight !== undefined && weightUses.get(useKey(module))! > 1;
  const readings = new Map<MatchedModule, NameReading>();
  for (const module of matched) readings.set(module, readNames(module, candidateNames(module, isShared)));

  const functions = attentionFunctions(model);
  const placed = placeModules(matched, readings, order, functions);
  const modules: DiscoveredModule[] = [];
  const unrecognised: Unrecognised[] = [];
  const leaves: string[] = [];
  const discovered = new Map<MatchedModule, DiscoveredModule>();
  for (const module of matched) {
    const placement = placed.get(module)!;
    if (module.kind === "norm" && !module.weight) {
      unrecognised.push({ kind: "node", name: nodeLabel(module.node), reason: `${module.form} whose scale is not a float initializer (a weight fed as a graph input is not a parameter here)` });
      continue;
    }
    if (!placement.role) {
      unrecognised.push({ kind: "node", name: nodeLabel(module.node), reason: `${module.kind} (${module.form}) whose role neither names nor structure tell` });
      continue;
    }
    const reading = readings.get(module)!;
    const named: DiscoveredModule = {
      ...module,
      path: "",
      role: placement.role,
      layer: placement.layer ?? null,
      originalName: reading.source ?? module.weight?.value.name ?? module.node.name,
      roleFrom: placement.roleFrom,
      layerFrom: placement.layerFrom,
      parameterCount: (module.weight ? elementCount(module.weight.shape) : 0) + (module.bias ? elementCount(module.bias.shape) : 0),
    };
    modules.push(named);
    discovered.set(module, named);
    leaves.push(PATH_LEAVES[placement.slot ?? ""] ?? placement.slot ?? placement.role);
  }
  assignPaths(modules, leaves);
  markTies(modules);
  unrecognised.push(...unclaimedInitializers(model, modules));
  const index = new ModuleIndex(matched);
  const attention = describeAttention(findAttention([...order.keys()], index, functions), index, discovered);
  for (const block of attention) {
    const fused = block.qkvLayout ? modules.find((module) => module.path === block.q[0]) : undefined;
    if (fused) fused.qkvLayout = block.qkvLayout!;
  }
  const mlp = describeMlp(modules, index, order);
  return { modules, unrecognised, attention, mlp };
}

/** Returns the node's name, or its op and first output for an unnamed node. */
function nodeLabel(node: Node): string {
  return node.name !== "" ? node.name : `${node.opType} -> ${node.outputs[0]?.name ?? ""}`;
}

/** Sets `layers.N.<leaf>` or `<leaf>` paths. A repeated path gets `.1`, `.2` in graph order. */
function assignPaths(modules: DiscoveredModule[], leaves: readonly string[]): void {
  const taken = new Map<string, number>();
  for (const [i, module] of modules.entries()) {
    const leaf = leaves[i];
    const base = module.layer === null ? leaf : `layers.${module.layer}.${leaf}`;
    const count = taken.get(base) ?? 0;
    taken.set(base, count + 1);
    module.path = count === 0 ? base : `${base}.${count}`;
  }
}

/** Points each module that reads an already claimed weight at the first module reading it. */
function markTies(modules: DiscoveredModule[]): void {
  const owner = new Map<Value, DiscoveredModule>();
  for (const module of modules) {
    if (!module.weight) continue;
    const first = owner.get(module.weight.value);
    if (first) module.tiedTo = first.path;
    else owner.set(module.weight.value, module);
  }
}

/** Explains why no module records an initializer, from the ops and inputs that read it. */
function leftoverReason(value: Value): string {
  const readers = [...new Set(value.uses.map((use) => `${use.node.qualifiedOpType} input ${use.index}`))].sort();
  if (value.uses.some((use) => use.node.qualifiedOpType === "com.microsoft::Attention")) return "input of com.microsoft::Attention that is not a 2-D packed QKV weight or its matching bias";
  if (readers.length === 0) return "not read by any node";
  return `read by ${readers.join(", ")}, and no matched module records it`;
}

/** Lists the float initializers of more than one element that no discovered module records. */
function unclaimedInitializers(model: Model, modules: readonly DiscoveredModule[]): Unrecognised[] {
  const claimed = new Set<Value>();
  for (const module of modules) {
    if (module.weight) claimed.add(module.weight.value);
    if (module.bias) claimed.add(module.bias.value);
  }
  const found: Unrecognised[] = [];
  for (const graph of allGraphs(model.graph)) {
    for (const value of graph.initializers.values()) {
      const parameter = floatParameter(value);
      if (!parameter || claimed.has(value) || elementCount(parameter.shape) <= 1) continue;
      found.push({ kind: "initializer", name: value.name, reason: leftoverReason(value) });
    }
  }
  return found;
}
