import type { Discovery } from "../match/discover";
import type { QkvPart } from "../match/fused-qkv";
import type { DiscoveredModule, ModuleKind, Role } from "../match/module";

/**
 * What a selector chooses from: every discovered module, and each part of a
 * fused QKV projection whose row layout discovery could read. A part has
 * the path and role its projection would have if it were separate
 * (`layers.0.attn.q` inside `layers.0.attn.qkv`), so one spec serves fused
 * and separate projections alike.
 */
export interface Target {
  path: string;
  role: Role | null;
  layer: number | null;
  kind: ModuleKind;
  /** The module, or for a part, the fused projection that contains it. */
  module: DiscoveredModule;
  /** Part of a fused QKV projection, absent for a whole module. */
  part?: QkvPart;
  /** The exporter's initializer or node name of the module. */
  originalName: string;
  /** The PyTorch module name (`model.layers.0.self_attn.q_proj`), as Hugging Face PEFT names adapter keys; the canonical path when the exporter kept no names. */
  torchName: string;
  /** Input width of a linear layer. */
  inFeatures?: number;
  /** Output width of a linear layer, or of the part's rows. */
  outFeatures?: number;
}

const PART_ROLES: Record<QkvPart, Role> = { q: "attn.q", k: "attn.k", v: "attn.v" };

/** Lists a model's modules and the parts of its fused QKV projections, in graph order. */
export function selectionTargets(discovery: Pick<Discovery, "modules">): Target[] {
  const targets: Target[] = [];
  for (const module of discovery.modules) {
    const torchName = torchModuleName(module);
    targets.push({
      path: module.path,
      role: module.role,
      layer: module.layer,
      kind: module.kind,
      module,
      originalName: module.originalName,
      torchName,
      inFeatures: module.inFeatures,
      outFeatures: module.outFeatures,
    });
    const layout = module.qkvLayout;
    if (module.role !== "attn.qkv" || !layout || layout.layout === "ambiguous" || !layout.order || !layout.widths) continue;
    const stem = module.path.endsWith(".qkv") ? module.path.slice(0, -".qkv".length) : module.path;
    const groups = layout.layout === "interleaved" ? (layout.groups ?? 1) : 1;
    for (const part of layout.order) {
      targets.push({
        path: `${stem}.${part}`,
        role: PART_ROLES[part],
        layer: module.layer,
        kind: "linear",
        module,
        part,
        originalName: module.originalName,
        torchName,
        inFeatures: module.inFeatures,
        outFeatures: layout.widths[part] * groups,
      });
    }
  }
  return targets;
}

/**
 * Reads the PyTorch module name from the names an exporter keeps: a
 * parameter name loses its `.weight` or `.bias`, and a node name such as
 * `/model/layers.0/self_attn/q_proj/MatMul` loses its op and turns `/` into
 * `.`. Falls back to the canonical path.
 */
export function torchModuleName(module: Pick<DiscoveredModule, "originalName" | "path" | "weight">): string {
  const name = module.originalName;
  if (name.startsWith("/")) {
    const segments = name.split("/").filter((segment) => segment !== "");
    if (segments.length >= 2) return segments.slice(0, -1).join(".");
  }
  // Some exporters suffix a renamed copy (`h.0.attn.c_attn.weight_resize` from PyTorch 1.6).
  const parameter = /^(.+)\.(weight|bias)(_[A-Za-z0-9]+)?$/.exec(name);
  if (parameter && !parameter[1].startsWith("onnx::")) return parameter[1];
  return module.path;
}
