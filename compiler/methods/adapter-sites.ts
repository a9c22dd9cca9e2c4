import type { AdapterMethod, AdapterSublayer } from "../dsl/adapter";
import { type SpecWarning, resolveSelection } from "../dsl/match";
import { SpecError } from "../dsl/spec-error";
import { type Target, torchModuleName } from "../dsl/targets";
import type { Value } from "../ir/value";
import type { Discovery } from "../match/discover";
import type { DiscoveredModule, Role } from "../match/module";

/** Placement of an adapter: after its sublayer (serial) or beside it (parallel). */
export type AdapterPlacement = "serial" | "parallel";

/** One adapter to insert: a sublayer of one layer, with the values it reads and changes. */
export interface AdapterSite {
  sublayer: AdapterSublayer;
  layer: number;
  placement: AdapterPlacement;
  /** The sublayer's output projection (`attn.o` or `mlp.down`), whose output (after its bias) the adapter changes. */
  projection: DiscoveredModule;
  /** Adapter input: the projection's output when serial, the sublayer's normed input when parallel. */
  input: Value;
  /** The value the adapter's output is added to. */
  output: Value;
  /** Hidden size: the projection's output width. */
  hidden: number;
  /** Name stem of the adapter's tensors: `<PyTorch name of the projection>.adapter.<placement>`. */
  stem: string;
}

/** The output projection of each sublayer, and the projections that read the sublayer's input, first found first used. */
const SUBLAYER_ROLES: Record<AdapterSublayer, { output: Role; input: Role[] }> = {
  attn: { output: "attn.o", input: ["attn.qkv", "attn.q", "attn.k", "attn.v"] },
  mlp: { output: "mlp.down", input: ["mlp.gate_up", "mlp.up", "mlp.gate"] },
};

const SUBLAYER_NAMES: Record<AdapterSublayer, string> = { attn: "attention", mlp: "MLP" };

/**
 * Finds the adapter sites of `method`: for each chosen layer and sublayer,
 * the output projection and, for a parallel adapter, the value that feeds
 * the sublayer's input projections. A chosen layer without the sublayer is
 * an error, so a spec never adapts fewer places than it names.
 */
export function findAdapterSites(method: AdapterMethod, discovery: Discovery, targets: readonly Target[]): { sites: AdapterSite[]; warnings: SpecWarning[] } {
  const placement: AdapterPlacement = method.kind === "parallel" ? "parallel" : "serial";
  const warnings: SpecWarning[] = [];
  let layers: number[];
  if (method.layers) {
    const selection = resolveSelection(method.layers, targets, "adapter layers");
    warnings.push(...selection.warnings);
    layers = [...new Set(selection.targets.flatMap((target) => (target.layer === null ? [] : [target.layer])))].sort((a, b) => a - b);
    if (layers.length === 0) {
      throw new SpecError("E_SPEC_SELECTOR", `adapter layers: ${method.layers} selects only modules outside the transformer layers (${selection.targets.slice(0, 3).map((target) => target.path).join(", ")}). Select modules of the layers to adapt, such as select.layers(0, 1).`, method.layers.site, method.layers.option);
    }
  } else {
    const outputRoles = method.sublayers.map((sublayer) => SUBLAYER_ROLES[sublayer].output);
    layers = [...new Set(discovery.modules.flatMap((module) => (module.layer !== null && module.role !== null && outputRoles.includes(module.role) ? [module.layer] : [])))].sort((a, b) => a - b);
    if (layers.length === 0) {
      const requested = method.sublayers.map((sublayer) => `${SUBLAYER_NAMES[sublayer]} (${SUBLAYER_ROLES[sublayer].output})`).join(" or ");
      throw new SpecError("E_SPEC_MODEL", `adapter: the model has no ${requested} output projection in any layer, so there is nothing to adapt. Run \`peftc inspect MODEL\` to see the roles discovery found.`, method.site, ["sublayers"]);
    }
  }

  const sites: AdapterSite[] = [];
  for (const layer of layers) {
    for (const sublayer of method.sublayers) sites.push(siteOf(method, discovery, layer, sublayer, placement));
  }
  return { sites, warnings };
}

function siteOf(method: AdapterMethod, discovery: Discovery, layer: number, sublayer: AdapterSublayer, placement: AdapterPlacement): AdapterSite {
  const roles = SUBLAYER_ROLES[sublayer];
  const inLayer = (role: Role): DiscoveredModule | undefined => discovery.modules.find((module) => module.layer === layer && module.role === role);
  const projection = inLayer(roles.output);
  if (!projection || projection.outFeatures === undefined) {
    throw new SpecError(
      "E_SPEC_MODEL",
      `adapter: layer ${layer} has no ${SUBLAYER_NAMES[sublayer]} output projection (role ${roles.output}) with a known width, so there is no place for the ${sublayer} adapter. Restrict the layers option, or remove "${sublayer}" from sublayers.`,
      method.site,
      method.layers ? ["layers"] : ["sublayers"],
    );
  }
  const hidden = projection.outFeatures;
  const stem = `${torchModuleName(projection)}.adapter.${placement}`;
  if (placement === "serial") return { sublayer, layer, placement, projection, input: projection.output, output: projection.output, hidden, stem };

  const reader = roles.input.map(inLayer).find((module) => module?.input !== undefined);
  if (!reader?.input) {
    throw new SpecError(
      "E_SPEC_MODEL",
      `adapter: layer ${layer} has no ${SUBLAYER_NAMES[sublayer]} input projection (${roles.input.join(", ")}) whose input discovery found, so a parallel adapter has nothing to read. Use a serial adapter (kind "houlsby" or "pfeiffer") there.`,
      method.site,
      ["kind"],
    );
  }
  const width = lastDim(reader.input);
  if (width !== undefined && width !== hidden) {
    throw new SpecError(
      "E_SPEC_MODEL",
      `adapter: the ${SUBLAYER_NAMES[sublayer]} input of layer ${layer} (${reader.input.name}) is ${width} wide but its output projection ${projection.path} writes ${hidden}, so a parallel adapter cannot map one onto the other. Use a serial adapter there.`,
      method.site,
      ["kind"],
    );
  }
  return { sublayer, layer, placement, projection, input: reader.input, output: projection.output, hidden, stem };
}

function lastDim(value: Value): number | undefined {
  const shape = value.type?.kind === "tensor" ? value.type.shape : undefined;
  const dim = shape?.[shape.length - 1];
  return typeof dim === "number" ? dim : undefined;
}
