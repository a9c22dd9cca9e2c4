import { brand } from "./brand";
import { OptionReader } from "./options";
import { type Selector, type SelectorLike, toSelector } from "./selector";
import { type SourceSite, captureSite } from "./site";

/**
 * A selective method: existing tensors of the model train, nothing is
 * added. `bitfit` trains biases, `layernorm` the scale and bias of norms,
 * `unfreeze` every tensor of the selected modules.
 */
export interface SelectiveMethod {
  readonly method: "bitfit" | "layernorm" | "unfreeze";
  /** The modules whose tensors train; undefined for every module the method applies to. */
  readonly targets: Selector | undefined;
  readonly site: SourceSite | undefined;
}

/** Options of the selective methods. */
export interface SelectiveOptions {
  /** Modules to take tensors from; default every module. */
  targets?: SelectorLike;
}

function selective(method: SelectiveMethod["method"], options: SelectiveOptions | undefined, site: SourceSite | undefined, required: boolean): SelectiveMethod {
  const reader = new OptionReader(method === "layernorm" ? "layerNormTuning" : method, site);
  const record = reader.object(options ?? {}, ["targets"]);
  if (required && record.targets === undefined) reader.fail("targets", "is required: name the modules to train in full, for example select.role(\"head\").");
  const targets = record.targets === undefined ? undefined : toSelector(record.targets as SelectorLike, site, ["targets"]);
  return brand({ method, targets, site });
}

/** BitFit: trains the biases of the model (or of the selected modules) and freezes everything else (Ben Zaken et al., 2021). */
export function bitfit(options?: SelectiveOptions): SelectiveMethod {
  return selective("bitfit", options, captureSite(), false);
}

/** LayerNorm tuning: trains the scale and bias of every norm (or of the selected norms). */
export function layerNormTuning(options?: SelectiveOptions): SelectiveMethod {
  return selective("layernorm", options, captureSite(), false);
}

/** Trains every tensor of the selected modules in full: chosen layers, a new head, a norm. */
export function unfreeze(options: Required<SelectiveOptions>): SelectiveMethod {
  return selective("unfreeze", options, captureSite(), true);
}
