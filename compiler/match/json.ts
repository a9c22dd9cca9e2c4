import type { Discovery } from "./discover";
import type { AttentionBlock } from "./attention";
import type { MlpBlock } from "./mlp";
import type { DiscoveredModule } from "./module";

/** One attention block as plain JSON: the same fields, in a fixed order. */
export type AttentionBlockJson = AttentionBlock;

/** One MLP block as plain JSON: the same fields, in a fixed order. */
export type MlpBlockJson = MlpBlock;

/** One module as plain JSON: names and numbers only, no graph references. */
export interface ModuleJson {
  path: string;
  role: string | null;
  kind: string;
  form: string;
  layer: number | null;
  originalName: string;
  roleFrom: string | null;
  layerFrom: string | null;
  weight: string | null;
  weightShape: number[] | null;
  layout: string | null;
  inFeatures: number | null;
  outFeatures: number | null;
  bias: string | null;
  parameterCount: number;
  tiedTo: string | null;
}

export interface DiscoveryJson {
  modules: ModuleJson[];
  unrecognised: { kind: string; name: string; reason: string }[];
  /** Optional so that summaries built without a discovery (a failed load) need not invent one. */
  attention?: AttentionBlockJson[];
  /** Optional for the same reason as `attention`. */
  mlp?: MlpBlockJson[];
}

/** Compares by UTF-16 code units, which unlike localeCompare does not depend on the host's locale. */
function compareCodeUnits(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

function moduleToJson(module: DiscoveredModule): ModuleJson {
  return {
    path: module.path,
    role: module.role,
    kind: module.kind,
    form: module.form,
    layer: module.layer,
    originalName: module.originalName,
    roleFrom: module.roleFrom,
    layerFrom: module.layerFrom,
    weight: module.weight?.value.name ?? null,
    weightShape: module.weight?.shape ?? null,
    layout: module.layout ?? null,
    inFeatures: module.inFeatures ?? null,
    outFeatures: module.outFeatures ?? null,
    bias: module.bias?.value.name ?? null,
    parameterCount: module.parameterCount,
    tiedTo: module.tiedTo ?? null,
  };
}

function attentionToJson(block: AttentionBlock): AttentionBlockJson {
  return {
    layer: block.layer,
    heads: block.heads,
    kvHeads: block.kvHeads,
    headDim: block.headDim,
    source: block.source,
    core: { ...block.core },
    rotary: block.rotary ? { ...block.rotary } : null,
    q: [...block.q],
    k: [...block.k],
    v: [...block.v],
    o: [...block.o],
    qkvLayout: block.qkvLayout ? { ...block.qkvLayout, order: block.qkvLayout.order && [...block.qkvLayout.order], widths: block.qkvLayout.widths && { ...block.qkvLayout.widths } } : null,
  };
}

function mlpToJson(block: MlpBlock): MlpBlockJson {
  const { activation } = block;
  return {
    layer: block.layer,
    up: block.up,
    gate: block.gate,
    gateUp: block.gateUp,
    split: block.split ? { ...block.split } : null,
    down: block.down,
    activation: {
      function: activation.function,
      form: activation.form,
      gated: activation.gated,
      ops: [...activation.ops],
      nodes: [...activation.nodes],
      gating: activation.gating,
      reason: activation.reason,
    },
  };
}

/**
 * Converts a discovery to plain JSON with a fixed key order. Modules keep the
 * topological order of the graph and unrecognised entries are sorted by name,
 * so the same model always gives the same text.
 */
export function discoveryToJson(discovery: Discovery): DiscoveryJson {
  const unrecognised = discovery.unrecognised.map(({ kind, name, reason }) => ({ kind, name, reason }));
  unrecognised.sort((a, b) => compareCodeUnits(a.name, b.name) || compareCodeUnits(a.kind, b.kind));
  return { modules: discovery.modules.map(moduleToJson), unrecognised, attention: discovery.attention.map(attentionToJson), mlp: discovery.mlp.map(mlpToJson) };
}
