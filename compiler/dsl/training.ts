import { brand } from "./brand";
import { OptionReader } from "./options";
import { type SourceSite, captureSite } from "./site";

/** Next-token prediction: logits at position t against labels at t + 1, labels of -100 ignored. */
export interface CausalLmLoss {
  readonly loss: "causal_lm";
  readonly site: SourceSite | undefined;
}

/** Masked-token prediction: logits at each position against its label, labels of -100 ignored. */
export interface MaskedLmLoss {
  readonly loss: "masked_lm";
  readonly site: SourceSite | undefined;
}

/** Cross-entropy over `classes` classes of one label per sequence. */
export interface ClassificationLoss {
  readonly loss: "sequence_classification";
  readonly classes: number;
  readonly site: SourceSite | undefined;
}

/** Mean squared error of one or more real targets per sequence. */
export interface RegressionLoss {
  readonly loss: "regression";
  readonly targets: number;
  readonly site: SourceSite | undefined;
}

export type Loss = CausalLmLoss | MaskedLmLoss | ClassificationLoss | RegressionLoss;

/** Makes the causal language-modelling loss, the default for decoders. */
export function causalLM(): CausalLmLoss {
  return brand({ loss: "causal_lm", site: captureSite() });
}

/** Makes the masked language-modelling loss (BERT). */
export function maskedLM(): MaskedLmLoss {
  return brand({ loss: "masked_lm", site: captureSite() });
}

/** Sequence classification with cross-entropy; `classes` is the number of labels (at least 2). */
export function sequenceClassification(options: { classes: number }): ClassificationLoss {
  const site = captureSite();
  const reader = new OptionReader("sequenceClassification", site);
  const record = reader.object(options, ["classes"]);
  if (record.classes === undefined) reader.fail("classes", "is required: the number of labels, at least 2.");
  return brand({ loss: "sequence_classification", classes: reader.number(record, "classes", { integer: true, min: 2 }, 2), site });
}

/** Regression with mean squared error; `targets` real values per sequence, default 1. */
export function regression(options: { targets?: number } = {}): RegressionLoss {
  const site = captureSite();
  const reader = new OptionReader("regression", site);
  const record = reader.object(options, ["targets"]);
  return brand({ loss: "regression", targets: reader.number(record, "targets", { integer: true, min: 1 }, 1), site });
}

/** Options of `adamw()`; defaults are PyTorch's `torch.optim.AdamW`. */
export interface AdamWOptions {
  /** Learning rate when the runtime does not schedule one. Default 1e-3. */
  lr?: number;
  /** Decay rates of the first and second moment. Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Term added to the denominator. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay. Default 0.01. */
  weightDecay?: number;
}

/** Options of `sgd()`; defaults are PyTorch's `torch.optim.SGD` except the learning rate, which PyTorch requires. */
export interface SgdOptions {
  /** Learning rate when the runtime does not schedule one. Default 1e-3. */
  lr?: number;
  /** Momentum factor. Default 0 (plain SGD). */
  momentum?: number;
  /** L2 penalty added to the gradient. Default 0. */
  weightDecay?: number;
  /** Nesterov momentum. Default false. */
  nesterov?: boolean;
}

export interface AdamW {
  readonly optimizer: "adamw";
  readonly lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly site: SourceSite | undefined;
}

export interface Sgd {
  readonly optimizer: "sgd";
  readonly lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  readonly site: SourceSite | undefined;
}

export type Optimizer = AdamW | Sgd;

/** AdamW: Adam with bias correction and decoupled weight decay, as PyTorch defines it. */
export function adamw(options: AdamWOptions = {}): AdamW {
  const site = captureSite();
  const reader = new OptionReader("adamw", site);
  const record = reader.object(options, ["lr", "betas", "eps", "weightDecay"]);
  let betas: [number, number] = [0.9, 0.999];
  if (record.betas !== undefined) {
    const value = record.betas as unknown[];
    const valid = Array.isArray(value) && value.length === 2 && value.every((beta) => typeof beta === "number" && beta >= 0 && beta < 1);
    if (!valid) reader.fail("betas", "must be two numbers in [0, 1), such as [0.9, 0.999].");
    betas = [value[0] as number, value[1] as number];
  }
  return brand({
    optimizer: "adamw",
    lr: reader.number(record, "lr", { above: 0 }, 1e-3),
    betas,
    eps: reader.number(record, "eps", { above: 0 }, 1e-8),
    weightDecay: reader.number(record, "weightDecay", { min: 0 }, 0.01),
    site,
  });
}

/** Stochastic gradient descent with optional momentum, as PyTorch defines it. */
export function sgd(options: SgdOptions = {}): Sgd {
  const site = captureSite();
  const reader = new OptionReader("sgd", site);
  const record = reader.object(options, ["lr", "momentum", "weightDecay", "nesterov"]);
  const momentum = reader.number(record, "momentum", { min: 0, below: 1 }, 0);
  const nesterov = reader.boolean(record, "nesterov", false);
  if (nesterov && momentum === 0) reader.fail("nesterov", "needs a momentum above 0, as in PyTorch; set momentum or drop nesterov.");
  return brand({
    optimizer: "sgd",
    lr: reader.number(record, "lr", { above: 0 }, 1e-3),
    momentum,
    weightDecay: reader.number(record, "weightDecay", { min: 0 }, 0),
    nesterov,
    site,
  });
}
