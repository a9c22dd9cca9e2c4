import { brand } from "./brand";
import { OptionReader } from "./options";
import { type Selector, type SelectorLike, select, toSelector } from "./selector";
import { type SourceSite, captureSite } from "./site";

/** Options of `ia3()`, after Hugging Face PEFT's `IA3Config`. */
export interface Ia3Options {
  /** Linear layers that get a scaling vector; default the key, value and MLP down-projections. */
  targets?: SelectorLike;
  /**
   * The targets whose input is scaled (PEFT's `feedforward_modules`), such
   * as the MLP down-projection, whose input is the inner activation; the
   * other targets scale their output. Default the MLP down-projections.
   * Modules it selects outside `targets` are ignored.
   */
  feedforward?: SelectorLike;
}

/** An (IA)3 method of a spec, with defaults applied. */
export interface Ia3Method {
  readonly method: "ia3";
  readonly targets: Selector;
  readonly feedforward: Selector;
  readonly site: SourceSite | undefined;
}

/**
 * (IA)3 (Liu et al., 2022): learned vectors, initialised to ones, that
 * scale the keys, the values and the MLP's inner activation element-wise.
 */
export function ia3(options: Ia3Options = {}): Ia3Method {
  const site = captureSite();
  const reader = new OptionReader("ia3", site);
  const record = reader.object(options, ["targets", "feedforward"]);
  return brand({
    method: "ia3",
    targets: record.targets === undefined ? select.role("attn.k", "attn.v", "mlp.down") : toSelector(record.targets as SelectorLike, site, ["targets"]),
    feedforward: record.feedforward === undefined ? select.role("mlp.down") : toSelector(record.feedforward as SelectorLike, site, ["feedforward"]),
    site,
  });
}
