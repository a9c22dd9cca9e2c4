import type { LoraRecord, TrainableParameter } from "../methods/parameters";
import type { Ia3Record } from "../methods/ia3-record";
import type { PrefixTuningRecord } from "../methods/prefix-record";
import type { TokenLimits } from "./token-limits";

/** One row of the manifest's parameter table: a trainable tensor without its values. */
export interface ManifestParameter extends Pick<TrainableParameter, "name" | "shape" | "dtype" | "init" | "module" | "method"> {
  /** Whether the optimizer applies weight decay to it. */
  weightDecay: boolean;
}

/** One emitted graph and its I/O names. */
export interface ManifestGraph {
  file: string;
  /** Data inputs; parameters, optimizer state and gradients are listed in `parameters` and `optimizer` instead. */
  inputs: string[];
  outputs: string[];
  /** Element type and shape (symbolic dims as names) of every graph input and output, parameters and state included. */
  types?: Record<string, { dtype: string; shape: (number | string | null)[] }>;
}

/** Trainable and total parameter counts, and PEFT's one-line summary of them. */
export interface TrainableSummary {
  trainable: number;
  all: number;
  /** trainable / all · 100. */
  percent: number;
  /** `trainable params: N || all params: M || trainable%: P`, as PEFT's print_trainable_parameters writes it. */
  line: string;
}

/**
 * manifest.json of an artifact folder: what it was compiled from, the
 * trainable parameters, the LoRA branches, and the graphs. Every field is a
 * pure function of the inputs, so recompiling gives the same bytes.
 */
export interface Manifest {
  format: "peftc.artifacts";
  version: 1;
  peftcVersion: string;
  baseModel: {
    /** File name of the model as given. */
    file: string;
    /** SHA-256 of the model file; external data files are identified by name and size below, never read. */
    sha256: string;
    externalData: { location: string; bytes: number }[];
  };
  spec: {
    /** File name of the spec, or null for an adapter-only compile. */
    file: string | null;
    /** SHA-256 of the spec's canonical JSON (its values, not its formatting). */
    sha256: string;
    /** The spec's values with defaults applied. */
    value: unknown;
  };
  /** The adapter folder loaded with `--adapter`, if any. */
  adapter: string | null;
  parameters: ManifestParameter[];
  lora: LoraRecord[];
  /** (IA)3 vectors; absent in manifests written before (IA)3 existed. */
  ia3?: Ia3Record[];
  /** The prefix tuning's layers and sizes; null without one, absent in manifests written before prefix tuning existed. */
  prefix?: PrefixTuningRecord | null;
  summary: TrainableSummary;
  /**
   * eval.onnx, grad.onnx, train.onnx, apply.onnx and infer.onnx, with their
   * data inputs (parameters and optimizer state are listed apart). A model
   * that cannot train (an opset before 13, an op without a gradient rule)
   * has only infer; an encoder has no infer. prefix.onnx comes with an
   * infer.onnx that reads the prefixes of a prefix tuning's projection:
   * it computes them from the projection's parameters, once per set.
   */
  graphs: Partial<Record<"eval" | "grad" | "train" | "apply" | "infer" | "prefix", ManifestGraph>>;
  /** Optimizer state tensor names (train.onnx and apply.onnx inputs, zeros at the start) and the training settings. */
  optimizer: { state: string[]; settings: unknown };
  /** The loss of the training graphs, the spec's or the one chosen from the logits' shape; null without training graphs. */
  loss: unknown;
  /** Base model data files in the artifact folder and how they got there. */
  externalData: { location: string; placement: "hardlink" | "copy" }[];
  /** LoRA and (IA)3 target paths folded into the base weights of infer.onnx; empty when adapters stay graph inputs there. */
  merged: string[];
  /** Token ids and lengths the model takes; absent in manifests written before the runtime checked them. */
  tokenLimits?: TokenLimits;
  warnings: string[];
}
