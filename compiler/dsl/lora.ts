import { brand } from "./brand";
import { OptionReader } from "./options";
import { type Selector, type SelectorLike, toSelector } from "./selector";
import { type SourceSite, captureSite } from "./site";

/** Initialisation of LoRA's A matrix. B always starts at zero, so the adapted model starts equal to the base model. */
export type LoraInit = "kaiming" | "gaussian";

/** Existing biases that train along with LoRA, as PEFT's `bias` option. */
export type BiasTraining = "none" | "all" | "lora_only";

/** Options of `lora()`. Defaults follow Hugging Face PEFT's `LoraConfig`. */
export interface LoraOptions {
  /** Linear layers to adapt: a selector, a path glob, a list of globs, or a regular expression over paths. */
  targets: SelectorLike;
  /** Rank r of the update A·B. Default 8. At most the smaller of the layer's input and output width. */
  rank?: number;
  /** Scaling numerator: the update is scaled by alpha / r (alpha / sqrt(r) with `rsLora`). Default 8. */
  alpha?: number;
  /** Dropout probability on the LoRA branch's input during training, in [0, 1). Default 0. Inverted dropout, so evaluation rescales nothing. */
  dropout?: number;
  /** Scale by alpha / sqrt(r) instead of alpha / r (rank-stabilized LoRA). Default false. */
  rsLora?: boolean;
  /**
   * Rank per module, overriding `rank`: keys are path globs as in
   * `select.path`, and the first key (in object order) that matches a
   * module wins, as PEFT's `rank_pattern`.
   */
  rankPattern?: Record<string, number>;
  /** Alpha per module, overriding `alpha`, keyed like `rankPattern`. */
  alphaPattern?: Record<string, number>;
  /**
   * Initialisation of A: `kaiming` (default) draws from PyTorch's
   * `kaiming_uniform_(a=sqrt(5))`, i.e. U(-1/sqrt(in), 1/sqrt(in)); `gaussian`
   * draws from a normal distribution with standard deviation 1/r, as PEFT's `init_lora_weights="gaussian"`.
   */
  init?: LoraInit;
  /** Existing biases that also train: none (default), every bias in the model, or the biases of the adapted layers. */
  bias?: BiasTraining;
  /** Existing modules that train in full, such as a classifier head (PEFT's `modules_to_save`). */
  train?: SelectorLike;
  /**
   * Multiplies each module's update by a learned per-token gate
   * sigmoid(x·w + b) of the module's input, as UniPELT. A gated update
   * depends on the input, so it cannot be merged. Default false.
   */
  gate?: boolean;
}

/** A LoRA method of a spec, with defaults applied. */
export interface LoraMethod {
  readonly method: "lora";
  readonly targets: Selector;
  readonly rank: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly rsLora: boolean;
  readonly rankPattern: ReadonlyMap<string, number>;
  readonly alphaPattern: ReadonlyMap<string, number>;
  readonly init: LoraInit;
  readonly bias: BiasTraining;
  readonly train: Selector | undefined;
  readonly gate: boolean;
  /** Spec position of the `lora(...)` call. */
  readonly site: SourceSite | undefined;
}

const LORA_OPTIONS = ["targets", "rank", "alpha", "dropout", "rsLora", "rankPattern", "alphaPattern", "init", "bias", "train", "gate"] as const;

/**
 * LoRA: adds y += (alpha / r) · dropout(x) · A · B beside each selected
 * linear layer, with A [in, r] and B [r, out] trainable and the layer's
 * weight frozen (Hu et al., 2021).
 */
export function lora(options: LoraOptions): LoraMethod {
  const site = captureSite();
  const reader = new OptionReader("lora", site);
  const record = reader.object(options, LORA_OPTIONS);
  if (record.targets === undefined) reader.fail("targets", "is required: name the linear layers to adapt, for example select.role(\"attn.q\", \"attn.v\").");
  const rank = reader.number(record, "rank", { integer: true, min: 1 }, 8);
  return brand({
    method: "lora",
    targets: toSelector(record.targets as SelectorLike, site, ["targets"]),
    rank,
    alpha: reader.number(record, "alpha", { above: 0 }, 8),
    dropout: reader.number(record, "dropout", { min: 0, below: 1 }, 0),
    rsLora: reader.boolean(record, "rsLora", false),
    rankPattern: reader.patternMap(record, "rankPattern", { integer: true, min: 1 }),
    alphaPattern: reader.patternMap(record, "alphaPattern", { above: 0 }),
    init: reader.choice(record, "init", ["kaiming", "gaussian"] as const, "kaiming"),
    bias: reader.choice(record, "bias", ["none", "all", "lora_only"] as const, "none"),
    train: record.train === undefined ? undefined : toSelector(record.train as SelectorLike, site, ["train"]),
    gate: reader.boolean(record, "gate", false),
    site,
  });
}
