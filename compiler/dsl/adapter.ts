import { brand } from "./brand";
import { OptionReader } from "./options";
import { type Selector, type SelectorLike, toSelector } from "./selector";
import { type SourceSite, captureSite } from "./site";

/** Placement of a bottleneck adapter. */
export type AdapterKind = "houlsby" | "pfeiffer" | "parallel";

/** Sublayer of a transformer block an adapter follows or sits beside. */
export type AdapterSublayer = "attn" | "mlp";

/** Activation between the down- and up-projection. */
export type AdapterActivation = "relu" | "gelu" | "silu" | "tanh";

/** Options of `adapter()`. */
export interface AdapterOptions {
  /**
   * `houlsby`: serial, after the attention output and after the MLP;
   * `pfeiffer`: serial, after the MLP only; `parallel`: beside the
   * sublayer, its output scaled and added to the sublayer's.
   */
  kind: AdapterKind;
  /** Sublayers to adapt; default both for houlsby, the MLP for pfeiffer and parallel. */
  sublayers?: readonly AdapterSublayer[];
  /** Bottleneck width. Give this or `reductionFactor`. */
  bottleneck?: number;
  /** Bottleneck width as hidden size / factor; default 16 when `bottleneck` is not given. */
  reductionFactor?: number;
  /** Default "relu". */
  activation?: AdapterActivation;
  /** Multiplier of a parallel adapter's output; default 1. */
  scale?: number;
  /** Layers to adapt: the layers of the modules this selector selects, such as select.layers(0, 5); default every layer. */
  layers?: SelectorLike;
  /**
   * Multiplies the adapter's output by a learned per-token gate
   * sigmoid(x·w + b), as UniPELT, with x the adapter's input. w starts at
   * zero and b at 0, so every gate starts at 0.5. Default false.
   */
  gate?: boolean;
}

/** A bottleneck adapter method of a spec, with defaults applied. */
export interface AdapterMethod {
  readonly method: "adapter";
  readonly kind: AdapterKind;
  readonly sublayers: readonly AdapterSublayer[];
  readonly bottleneck: number | undefined;
  readonly reductionFactor: number;
  readonly activation: AdapterActivation;
  readonly scale: number;
  readonly layers: Selector | undefined;
  readonly gate: boolean;
  readonly site: SourceSite | undefined;
}

const DEFAULT_SUBLAYERS: Record<AdapterKind, readonly AdapterSublayer[]> = { houlsby: ["attn", "mlp"], pfeiffer: ["mlp"], parallel: ["mlp"] };

/**
 * Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2020; He et
 * al., 2022): down-projection, activation, up-projection, with the
 * up-projection starting at zero so the adapted model starts equal to the base.
 */
export function adapter(options: AdapterOptions): AdapterMethod {
  const site = captureSite();
  const reader = new OptionReader("adapter", site);
  const record = reader.object(options, ["kind", "sublayers", "bottleneck", "reductionFactor", "activation", "scale", "layers", "gate"]);
  if (record.kind === undefined) reader.fail("kind", "is required: \"houlsby\", \"pfeiffer\" or \"parallel\".");
  const kind = reader.choice(record, "kind", ["houlsby", "pfeiffer", "parallel"] as const, "houlsby");
  const sublayers = record.sublayers ?? DEFAULT_SUBLAYERS[kind];
  if (!Array.isArray(sublayers) || sublayers.length === 0 || sublayers.some((item) => item !== "attn" && item !== "mlp") || new Set(sublayers).size !== sublayers.length) {
    reader.fail("sublayers", `must be a non-empty list of distinct "attn" and "mlp"; got ${JSON.stringify(sublayers)}.`);
  }
  if (record.bottleneck !== undefined && record.reductionFactor !== undefined) reader.fail("reductionFactor", "cannot be given with bottleneck: choose one way to size the adapter.");
  if (record.scale !== undefined && kind !== "parallel") reader.fail("scale", `scales a parallel adapter's output, but kind is "${kind}", whose serial adapter adds its output unscaled. Remove scale or use kind "parallel".`);
  return brand({
    method: "adapter",
    kind,
    sublayers: [...(sublayers as AdapterSublayer[])],
    bottleneck: reader.number(record, "bottleneck", { integer: true, min: 1 }),
    reductionFactor: reader.number(record, "reductionFactor", { above: 0 }, 16),
    activation: reader.choice(record, "activation", ["relu", "gelu", "silu", "tanh"] as const, "relu"),
    scale: reader.number(record, "scale", {}, 1),
    layers: record.layers === undefined ? undefined : toSelector(record.layers as SelectorLike, site, ["layers"]),
    gate: reader.boolean(record, "gate", false),
    site,
  });
}
