import type { MatchedModule, Role } from "./module";
import { type NamePattern, layerIndexOf, matchName } from "./name-patterns";

/** Role, norm slot and layer of one module as read from names in the graph. */
export interface NameReading {
  role?: Role;
  /** Path below the layer for norms (`attn_norm`, `final_norm`). */
  slot?: string;
  layer?: number;
  /** The name the role, or failing that the layer, was read from. */
  source?: string;
}

const PATTERN_KINDS: Record<MatchedModule["kind"], (pattern: NamePattern) => boolean> = {
  linear: (pattern) => pattern.role.startsWith("attn.") || pattern.role.startsWith("xattn.") || pattern.role.startsWith("mlp.") || pattern.role === "head" || pattern.role === "pooler",
  embedding: (pattern) => pattern.role.startsWith("embed."),
  norm: (pattern) => pattern.role === "norm",
};

/**
 * Names to read a module from, most specific first: its weight and bias
 * initializers, then its node names. `shared` returns true for a module
 * whose weight name cannot be trusted to name it.
 */
export function candidateNames(module: MatchedModule, shared: (module: MatchedModule) => boolean): string[] {
  const names: string[] = [];
  if (module.weight && !shared(module)) names.push(module.weight.value.name);
  if (module.bias && !shared(module)) names.push(module.bias.value.name);
  names.push(module.node.name);
  for (const node of module.nodes) if (node !== module.node) names.push(node.name);
  return names.filter((name) => name !== "");
}

/** Reads role, norm slot and layer index from the first names that carry them. */
export function readNames(module: MatchedModule, names: readonly string[]): NameReading {
  const reading: NameReading = {};
  for (const name of names) {
    const pattern = matchName(name, PATTERN_KINDS[module.kind]);
    if (!pattern) continue;
    reading.role = pattern.role;
    reading.slot = pattern.slot;
    reading.source = name;
    reading.layer = layerIndexOf(name);
    break;
  }
  if (reading.layer === undefined) {
    for (const name of names) {
      const layer = layerIndexOf(name);
      if (layer === undefined) continue;
      reading.layer = layer;
      reading.source ??= name;
      break;
    }
  }
  return reading;
}
