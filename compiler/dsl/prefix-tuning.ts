import { brand } from "./brand";
import { OptionReader } from "./options";
import { type Selector, type SelectorLike, toSelector } from "./selector";
import { type SourceSite, captureSite } from "./site";

/** Options of `prefixTuning()`. */
export interface PrefixTuningOptions {
  /** Number of prefix positions each attention layer gets in front of its keys and values. */
  virtualTokens: number;
  /**
   * Reparameterises the prefixes during training through an MLP
   * (embedding, Linear, tanh, Linear), as PEFT's `prefix_projection`, with
   * this hidden width. The emitted inference graph gets the folded
   * prefixes. Default off: the prefixes train directly.
   */
  projection?: { hidden: number };
  /** Attention layers that get a prefix: a selector over modules; default every layer. */
  layers?: SelectorLike;
  /** Scales the prefix's share of each query's attention by a learned gate sigmoid(x·w + b) of the layer input, as UniPELT. Default false. */
  gate?: boolean;
}

/** A prefix-tuning method of a spec, with defaults applied. */
export interface PrefixTuningMethod {
  readonly method: "prefix";
  readonly virtualTokens: number;
  /** Hidden width of the reparameterisation MLP; null without one. */
  readonly projectionHidden: number | null;
  readonly layers: Selector | undefined;
  readonly gate: boolean;
  readonly site: SourceSite | undefined;
}

/** Prefix tuning (Li and Liang, 2021): trainable key and value prefixes in every attention layer. */
export function prefixTuning(options: PrefixTuningOptions): PrefixTuningMethod {
  const site = captureSite();
  const reader = new OptionReader("prefixTuning", site);
  const record = reader.object(options, ["virtualTokens", "projection", "layers", "gate"]);
  if (record.virtualTokens === undefined) reader.fail("virtualTokens", "is required: the number of prefix positions, for example 20.");
  let projectionHidden: number | null = null;
  if (record.projection !== undefined) {
    const projection = new OptionReader("prefixTuning", site, ["projection"]);
    const fields = projection.object(record.projection, ["hidden"]);
    if (fields.hidden === undefined) projection.fail("hidden", "is required: the MLP's hidden width, for example 512.");
    projectionHidden = projection.number(fields, "hidden", { integer: true, min: 1 }, 1);
  }
  return brand({
    method: "prefix",
    virtualTokens: reader.number(record, "virtualTokens", { integer: true, min: 1 }, 1),
    projectionHidden,
    layers: record.layers === undefined ? undefined : toSelector(record.layers as SelectorLike, site, ["layers"]),
    gate: reader.boolean(record, "gate", false),
    site,
  });
}
