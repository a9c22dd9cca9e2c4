import type { Node } from "../ir/node";
import { reachStops } from "./graph-walk";
import type { MatchedModule, NamingSource, Role } from "./module";
import type { NameReading } from "./naming";
import { type AttentionAnchor, ModuleIndex, attentionRoles, findAttention, mlpRoles, reachesGraphOutput } from "./structure";

/** Position of a module in the model: its role, its layer and, for norms, the slot in the block. */
export interface Placement {
  role?: Role;
  roleFrom: NamingSource | null;
  layer?: number;
  layerFrom: NamingSource | null;
  /** Path below the layer when the role alone does not name the module (norms). */
  slot?: string;
}

/** Layers along the residual stream: each attention core opens one, at the first projection that feeds it. */
class LayerRegions {
  private readonly starts: { position: number; anchor: AttentionAnchor }[];

  constructor(anchors: readonly AttentionAnchor[], order: Map<Node, number>) {
    // NOTE: a cross-attention core with its own K and V projections opens a
    // layer of its own here, so encoder-decoder blocks without layer names
    // are counted twice.
    this.starts = anchors
      .filter((anchor) => anchor.k.length + anchor.v.length > 0 || anchor.q.length === 0)
      .map((anchor) => ({ anchor, position: Math.min(order.get(anchor.node)!, ...[...anchor.q, ...anchor.k, ...anchor.v].map((module) => order.get(module.node)!)) }))
      .sort((a, b) => a.position - b.position);
  }

  get count(): number {
    return this.starts.length;
  }

  layerAt(position: number): number | undefined {
    let layer: number | undefined;
    this.starts.forEach((start, k) => {
      if (start.position <= position) layer = k;
    });
    return layer;
  }

  get lastStart(): number {
    return this.starts.length === 0 ? Infinity : this.starts[this.starts.length - 1].position;
  }
}

function isAttentionRole(role: Role | undefined): boolean {
  return role !== undefined && (role.startsWith("attn.") || role.startsWith("xattn."));
}

/** Roles that structure gives linears: attention projections, the head, then MLP roles per layer. */
function structuralLinearRoles(linears: MatchedModule[], readings: Map<MatchedModule, NameReading>, anchors: AttentionAnchor[], regions: LayerRegions, order: Map<Node, number>, index: ModuleIndex, tokenTables: Set<unknown>): Map<MatchedModule, Role> {
  const roles = new Map<MatchedModule, Role>();
  for (const anchor of anchors) for (const [module, role] of attentionRoles(anchor)) roles.set(module, role);
  for (const module of linears) {
    if (roles.has(module) || readings.get(module)!.role) continue;
    const tied = module.weight !== undefined && tokenTables.has(module.weight.value);
    const afterLayers = regions.count > 0 && order.get(module.node)! > regions.lastStart && reachesGraphOutput(module.output);
    if (tied || afterLayers) roles.set(module, "head");
  }
  const byLayer = new Map<number, MatchedModule[]>();
  for (const module of linears) {
    const named = readings.get(module)!.role;
    if (isAttentionRole(named) || isAttentionRole(roles.get(module)) || named === "head" || named === "pooler" || roles.get(module) === "head") continue;
    const layer = readings.get(module)!.layer ?? regions.layerAt(order.get(module.node)!);
    if (layer === undefined) continue;
    byLayer.set(layer, [...(byLayer.get(layer) ?? []), module]);
  }
  for (const candidates of byLayer.values()) for (const [module, role] of mlpRoles(candidates, index)) roles.set(module, role);
  return roles;
}

function placeLinear(module: MatchedModule, reading: NameReading, structural: Role | undefined, regions: LayerRegions, order: Map<Node, number>): Placement {
  const role = reading.role ?? structural;
  let roleFrom: NamingSource | null = null;
  if (reading.role) roleFrom = "graph";
  else if (structural) roleFrom = "structure";
  const placement: Placement = { role, roleFrom, layerFrom: null };
  if (role === "head" || role === "pooler") return placement;
  if (reading.layer !== undefined) return { ...placement, layer: reading.layer, layerFrom: "graph" };
  const layer = regions.layerAt(order.get(module.node)!);
  return layer === undefined ? placement : { ...placement, layer, layerFrom: "structure" };
}

/** Norm slots that sit outside the layers even when a name carries a layer index. */
const OUTSIDE_LAYERS = new Set(["final_norm", "embed_norm", "head_norm"]);

const SLOT_BY_ROLE: [prefix: string, slot: string][] = [
  ["attn.", "attn_norm"],
  ["xattn.", "xattn_norm"],
  ["mlp.", "mlp_norm"],
  ["head", "final_norm"],
  ["pooler", "final_norm"],
];

/**
 * Places a norm by its name, or by what it feeds: the norm before an
 * attention core or a projection belongs to that layer.
 */
// NOTE: in a post-norm block (BERT) a norm without names is attributed to
// the block it feeds, which is the next layer.
function placeNorm(module: MatchedModule, reading: NameReading, placed: Map<MatchedModule, Placement>, anchorLayers: Map<Node, number>, index: ModuleIndex): Placement {
  const slotFromName = module.form === "EmbedLayerNormalization" ? "embed_norm" : reading.slot;
  const finalSlot = slotFromName !== undefined && OUTSIDE_LAYERS.has(slotFromName);
  const placement: Placement = { role: "norm", roleFrom: reading.role ? "graph" : "structure", layerFrom: null, slot: slotFromName };
  if (finalSlot) return placement;
  if (reading.layer !== undefined) return { ...placement, layer: reading.layer, layerFrom: "graph", slot: slotFromName ?? "norm" };
  const stops = reachStops(module.output, "forward", (node) => index.moduleOf(node) !== undefined || anchorLayers.has(node));
  for (const stop of stops) {
    const anchorLayer = anchorLayers.get(stop);
    const fed = index.moduleOf(stop);
    const fedPlacement = fed ? placed.get(fed) : undefined;
    if (anchorLayer !== undefined) return { ...placement, layer: anchorLayer, layerFrom: "structure", slot: slotFromName ?? "attn_norm" };
    if (!fedPlacement?.role || fed!.kind !== "linear") continue;
    const slot = slotFromName ?? SLOT_BY_ROLE.find(([prefix]) => fedPlacement.role!.startsWith(prefix))?.[1] ?? "norm";
    if (slot === "final_norm" || fedPlacement.layer === undefined) return { ...placement, slot };
    return { ...placement, layer: fedPlacement.layer, layerFrom: "structure", slot };
  }
  return { ...placement, slot: slotFromName ?? "norm" };
}

/** Gives every matched module a role, layer and slot, from names first and structure second. */
export function placeModules(matched: MatchedModule[], readings: Map<MatchedModule, NameReading>, order: Map<Node, number>, functions: ReadonlySet<string> = new Set()): Map<MatchedModule, Placement> {
  const index = new ModuleIndex(matched);
  const nodes = [...order.keys()];
  const anchors = findAttention(nodes, index, functions);
  const regions = new LayerRegions(anchors, order);
  const anchorLayers = new Map<Node, number>();
  for (const anchor of anchors) {
    const layer = regions.layerAt(order.get(anchor.node)!);
    if (layer !== undefined) anchorLayers.set(anchor.node, layer);
  }

  const placed = new Map<MatchedModule, Placement>();
  const embeddings = matched.filter((module) => module.kind === "embedding");
  for (const module of embeddings) {
    const reading = readings.get(module)!;
    const role = reading.role ?? module.structuralRole;
    let roleFrom: NamingSource | null = null;
    if (reading.role) roleFrom = "graph";
    else if (role) roleFrom = "structure";
    placed.set(module, { role, roleFrom, layerFrom: null });
  }
  const tokenTables = new Set<unknown>(embeddings.filter((module) => placed.get(module)!.role === "embed.tokens").map((module) => module.weight!.value));

  const linears = matched.filter((module) => module.kind === "linear");
  const structural = structuralLinearRoles(linears, readings, anchors, regions, order, index, tokenTables);
  for (const module of linears) placed.set(module, placeLinear(module, readings.get(module)!, structural.get(module), regions, order));
  for (const module of matched.filter((each) => each.kind === "norm")) placed.set(module, placeNorm(module, readings.get(module)!, placed, anchorLayers, index));
  return placed;
}
