import { types } from "node:util";
import { isBranded } from "./brand";
import type { AdapterMethod } from "./adapter";
import type { Ia3Method } from "./ia3";
import type { LoraMethod } from "./lora";
import type { PrefixTuningMethod } from "./prefix-tuning";
import type { PromptTuningMethod } from "./prompt-tuning";
import type { SelectiveMethod } from "./selective";
import { OptionReader } from "./options";
import { describeValue } from "./selector";
import { type SourceSite, captureSite } from "./site";
import { SpecError } from "./spec-error";
import { type Loss, type Optimizer, adamw, causalLM } from "./training";

/** A PEFT method of a spec, as made by `lora(...)` and the other method functions. */
export type Method = LoraMethod | SelectiveMethod | AdapterMethod | Ia3Method | PromptTuningMethod | PrefixTuningMethod;

/** Training settings of `defineSpec`. */
export interface TrainOptions {
  /**
   * The loss. It fixes the training graph's `labels` input. Default: from
   * the model's logits, `causalLM()` for [batch, sequence, vocab] and
   * `sequenceClassification` for [batch, classes].
   */
  loss?: Loss;
  /** The optimizer; default `adamw()`. */
  optimizer?: Optimizer;
  /** Clips gradients to this global L2 norm before the step; default off. */
  clipGradNorm?: number;
  /** Recomputes each layer's forward pass in the backward pass to save activation memory. Default false. */
  checkpointActivations?: boolean;
  /** Applies weight decay to biases and norm weights too, which PyTorch recipes usually exclude. Default false. */
  decayBiasesAndNorms?: boolean;
}

/** Inference settings of `defineSpec`. */
export interface InferenceOptions {
  /** Emits a KV-cached decoder graph for generation. Default true. */
  kvCache?: boolean;
  /** Folds mergeable adapters into the base weights of the inference graph. Default false: adapters stay swappable graph inputs. */
  mergeAdapters?: boolean;
  /** Uses onnxruntime's com.microsoft fused attention kernels in the inference graph. Default false. */
  fusedAttention?: boolean;
}

/** Options of `defineSpec`. */
export interface SpecOptions {
  /** The PEFT methods, applied in order. */
  methods: readonly Method[];
  train?: TrainOptions;
  inference?: InferenceOptions;
  /** Seed of every random initialisation; the same seed gives byte-identical artifacts. Default 0. */
  seed?: number;
}

export interface TrainSettings {
  /** Null when the spec leaves the loss to the model's logits shape. */
  readonly loss: Loss | null;
  readonly optimizer: Optimizer;
  readonly clipGradNorm: number | null;
  readonly checkpointActivations: boolean;
  readonly decayBiasesAndNorms: boolean;
}

export interface InferenceSettings {
  readonly kvCache: boolean;
  readonly mergeAdapters: boolean;
  readonly fusedAttention: boolean;
}

/** A spec with defaults applied: what `peftc compile` reads from a spec file's default export. */
export interface Spec {
  readonly kind: "peftc.spec";
  readonly methods: readonly Method[];
  readonly train: TrainSettings;
  readonly inference: InferenceSettings;
  readonly seed: number;
  readonly site: SourceSite | undefined;
}

/** Method names, and the DSL function that makes each. */
const METHOD_FUNCTIONS: Record<Method["method"], string> = {
  lora: "lora",
  bitfit: "bitfit",
  layernorm: "layerNormTuning",
  unfreeze: "unfreeze",
  adapter: "adapter",
  ia3: "ia3",
  prompt: "promptTuning",
  prefix: "prefixTuning",
};
const METHOD_NAMES = Object.keys(METHOD_FUNCTIONS);

/** Declares a PEFT spec; a spec file's default export is its result. */
export function defineSpec(options: SpecOptions): Spec {
  const site = captureSite();
  const reader = new OptionReader("defineSpec", site);
  const record = reader.object(options, ["methods", "train", "inference", "seed"]);
  const methods = record.methods;
  if (!Array.isArray(methods) || methods.length === 0) {
    reader.fail("methods", `must be a non-empty list of methods such as [lora({ targets: select.role("attn.q", "attn.v") })]; got ${describeValue(methods)}.`);
  }
  (methods as unknown[]).forEach((method, index) => {
    // A hand-built object with the right "method" field lacks the checked fields the compiler reads.
    if (!isBranded(method) || !METHOD_NAMES.includes(String((method as { method?: unknown }).method))) {
      reader.fail(["methods", String(index)], `must be made by ${Object.values(METHOD_FUNCTIONS).map((each) => `${each}(...)`).join(", ")}, not built by hand or copied with a spread; got ${describeValue(method)}.`);
    }
  });
  const seed = reader.number(record, "seed", { integer: true, min: 0, max: 2 ** 32 - 1 }, 0);
  return {
    kind: "peftc.spec",
    methods: methods as Method[],
    train: readTrain(record.train, site),
    inference: readInference(record.inference, site),
    seed,
    site,
  };
}

function readTrain(value: unknown, site: SourceSite | undefined): TrainSettings {
  const reader = new OptionReader("defineSpec", site, ["train"]);
  const record = reader.object(value ?? {}, ["loss", "optimizer", "clipGradNorm", "checkpointActivations", "decayBiasesAndNorms"]);
  const loss = (record.loss as Loss | undefined) ?? null;
  if (loss !== null && (!isBranded(loss) || !["causal_lm", "masked_lm", "sequence_classification", "regression"].includes((loss as { loss?: string }).loss ?? ""))) {
    reader.fail("loss", `must be made by causalLM(), maskedLM(), sequenceClassification(...) or regression(...), not built by hand; got ${describeValue(loss)}.`);
  }
  const optimizer = (record.optimizer as Optimizer | undefined) ?? adamw();
  if (!isBranded(optimizer) || !["adamw", "sgd"].includes((optimizer as { optimizer?: string }).optimizer ?? "")) {
    reader.fail("optimizer", `must be made by adamw(...) or sgd(...), not built by hand; got ${describeValue(optimizer)}.`);
  }
  return {
    loss,
    optimizer,
    clipGradNorm: reader.number(record, "clipGradNorm", { above: 0 }) ?? null,
    checkpointActivations: reader.boolean(record, "checkpointActivations", false),
    decayBiasesAndNorms: reader.boolean(record, "decayBiasesAndNorms", false),
  };
}

function readInference(value: unknown, site: SourceSite | undefined): InferenceSettings {
  const reader = new OptionReader("defineSpec", site, ["inference"]);
  const record = reader.object(value ?? {}, ["kvCache", "mergeAdapters", "fusedAttention"]);
  return {
    kvCache: reader.boolean(record, "kvCache", true),
    mergeAdapters: reader.boolean(record, "mergeAdapters", false),
    fusedAttention: reader.boolean(record, "fusedAttention", false),
  };
}

/** Training settings with every default, for a compile without a spec (an adapter folder alone). */
export function defaultTrainSettings(): TrainSettings {
  return readTrain(undefined, undefined);
}

/** True for a value made by `defineSpec`, the check the spec loader applies to a default export. */
export function isSpec(value: unknown): value is Spec {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "peftc.spec";
}

/** Throws the error a spec file gets when its default export is not a spec. */
export function notASpec(file: string, value: unknown): never {
  if (types.isPromise(value)) {
    throw new SpecError("E_SPEC_EVAL", `${file}: the default export is a Promise, but peftc runs specs synchronously. Export the result of defineSpec({ methods: [...] }) directly, not from an async function or a top-level await.`, undefined);
  }
  throw new SpecError("E_SPEC_EVAL", `${file}: the default export is not a spec; got ${describeValue(value)}. Write \`export default defineSpec({ methods: [...] })\` with defineSpec imported from "peftc".`, undefined);
}
