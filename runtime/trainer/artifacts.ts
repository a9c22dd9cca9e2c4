import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import type { Manifest } from "../../compiler/emit/manifest";
import type { TokenLimits } from "../../compiler/emit/token-limits";
import { float16ToFloat32 } from "../../compiler/onnx/half";
import { readSafetensors } from "../../compiler/emit/safetensors";
import { RuntimeInputError } from "../errors";
import { type LabelTarget, TOKEN_LABELS } from "../data/batches";
import { readManifest } from "../cli/export-adapter";
import { toOrtTensor } from "./checkpoint";
import { type DeviceRequest, type ExecutionDevice, type SkippedDevice, openSession } from "../session";
import { graphOutputLocations } from "./placement";
import { DeviceCopier } from "../device-copy";
import { checkParameterShapes } from "../param-shapes";
import { BATCH_INPUTS, fillModelInput, matchIntegerType } from "./model-inputs";

export type GraphKind = "eval" | "grad" | "train" | "apply";

/**
 * An artifact folder opened for training or evaluation: its manifest, and
 * sessions opened on first use on one execution device. On WebGPU the
 * updated parameters and optimizer state stay in device buffers from one
 * step to the next. Only the loss and the counts come back each step.
 */
export class ArtifactFolder {
  readonly manifest: Manifest;
  private readonly sessions = new Map<GraphKind, Promise<ort.InferenceSession>>();
  private chosen: { device: ExecutionDevice; skipped: SkippedDevice[] } | null = null;
  private opening: Promise<unknown> = Promise.resolve();
  private copier: DeviceCopier | null = null;

  constructor(
    readonly dir: string,
    /** Execution device; `auto` settles on the first provider that loads the first graph, and every later graph uses it. */
    private readonly device: DeviceRequest = "cpu",
  ) {
    this.manifest = readManifest(dir);
  }

  /** The device the sessions run on, and the providers `auto` skipped; null before the first session is open. */
  get placement(): { device: ExecutionDevice; skipped: SkippedDevice[] } | null {
    return this.chosen;
  }

  get paramNames(): string[] {
    return this.manifest.parameters.map((parameter) => parameter.name);
  }

  get stateNames(): string[] {
    return this.manifest.optimizer.state;
  }

  /** Whether any LoRA branch has dropout, which makes grad.onnx and train.onnx draw from onnxruntime's per-session random sequence. */
  get hasDropout(): boolean {
    return this.manifest.lora.some((branch) => branch.dropout > 0);
  }

  /** Token ids and lengths the model takes, for checking rows. Undefined for folders compiled before the manifest recorded them. */
  get tokenLimits(): TokenLimits | undefined {
    return this.manifest.tokenLimits;
  }

  /** Returns the max length to use when none is given: `preferred`, or the model's positions where there are fewer. */
  defaultMaxLength(preferred: number): number {
    return Math.min(preferred, this.tokenLimits?.maxTokens ?? preferred);
  }

  /** The learning rate of the spec's optimizer, used when --lr is not given. */
  get specLearningRate(): number | undefined {
    const settings = this.manifest.optimizer.settings as { optimizer?: { lr?: unknown } } | null;
    const lr = settings?.optimizer?.lr;
    return typeof lr === "number" ? lr : undefined;
  }

  /**
   * The labels the training graphs take, from manifest.json's loss. Causal
   * and masked LM take token labels, sequence classification one class per
   * row. Regression takes float targets, which the JSONL reader does not
   * read, so it raises E_TRAINING.
   */
  get labelTarget(): LabelTarget {
    const loss = this.manifest.loss as { loss?: string; classes?: number } | null;
    if (loss?.loss === "sequence_classification" && typeof loss.classes === "number") return { kind: "classes", classes: loss.classes };
    if (loss?.loss === "regression") {
      throw new RuntimeInputError("E_TRAINING", `${this.dir} trains a regression loss, whose float targets peftc train and eval do not read from JSONL rows. They read token labels and class labels; run eval.onnx and train.onnx with your own feeds for regression.`, { file: this.dir });
    }
    return TOKEN_LABELS;
  }

  session(kind: GraphKind): Promise<ort.InferenceSession> {
    let session = this.sessions.get(kind);
    if (!session) {
      const file = path.join(this.dir, `${kind}.onnx`);
      if (!this.manifest.graphs[kind] || !fs.existsSync(file)) {
        throw new RuntimeInputError("E_TRAINING", `${file} not found: the artifact folder has no ${kind} graph, so it cannot train or evaluate. Compile a model that trains (opset 13 or later).`, { file });
      }
      session = this.open(kind, file);
      this.sessions.set(kind, session);
    }
    return session;
  }

  /** Opens sessions one after another, so `auto` probes providers once and every graph gets the device the first one took. */
  private open(kind: GraphKind, file: string): Promise<ort.InferenceSession> {
    const opened = this.opening.then(async () => {
      const outputs = this.manifest.graphs[kind]?.outputs ?? [];
      const sessionOptions = (device: ExecutionDevice): ort.InferenceSession.SessionOptions => {
        const preferredOutputLocation = graphOutputLocations(kind, outputs, device);
        return { logSeverityLevel: 3, ...(preferredOutputLocation ? { preferredOutputLocation } : {}) };
      };
      const result = await openSession(file, { device: this.chosen?.device ?? this.device, sessionOptions });
      this.chosen ??= { device: result.device, skipped: result.skipped };
      return result.session;
    });
    this.opening = opened.catch(() => undefined);
    return opened;
  }

  /** Reads trainable tensors from a params.safetensors-format file (default: the folder's params.safetensors). */
  readParams(file = path.join(this.dir, "params.safetensors")): Record<string, ort.Tensor> {
    const { tensors } = readSafetensors(file);
    const params: Record<string, ort.Tensor> = {};
    for (const name of this.paramNames) {
      const tensor = tensors.get(name);
      if (!tensor) {
        throw new RuntimeInputError("E_CHECKPOINT", `${file} has no tensor "${name}", which the artifact folder trains. Pass a params file written for this artifact folder.`, { file, tensor: name });
      }
      params[name] = toOrtTensor(tensor, file);
    }
    checkParameterShapes(this.manifest.parameters, params, file, "E_CHECKPOINT");
    return params;
  }

  /** Zero optimizer state with the types and shapes that train.onnx (or apply.onnx) declares. */
  async zeroState(kind: "train" | "apply"): Promise<Record<string, ort.Tensor>> {
    const session = await this.session(kind);
    const metadata = new Map(session.inputMetadata.map((input) => [input.name, input]));
    const state: Record<string, ort.Tensor> = {};
    for (const name of this.stateNames) {
      const input = metadata.get(name);
      if (!input || !input.isTensor) throw new RuntimeInputError("E_TRAINING", `${kind}.onnx has no input "${name}" for the optimizer state that manifest.json lists. Compile the artifacts again.`, { tensor: name });
      const dims = input.shape.map((dim) => {
        if (typeof dim !== "number" || dim < 0) throw new RuntimeInputError("E_TRAINING", `${kind}.onnx input "${name}" has a symbolic dim, but optimizer state needs a fixed shape.`, { tensor: name });
        return dim;
      });
      const size = dims.reduce((product, dim) => product * dim, 1);
      state[name] = input.type === "float16" ? new ort.Tensor("float16", new Uint16Array(size), dims) : new ort.Tensor("float32", new Float32Array(size), dims);
    }
    return state;
  }

  /** Copies tensors that a step left in device buffers to host memory, for a checkpoint or params file. */
  async toHost(tensors: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    // Device tensors come only from a session, so before the first one every tensor is on the host.
    if (!this.chosen) return tensors;
    this.copier ??= new DeviceCopier(this.chosen.device);
    return this.copier.toHost(tensors);
  }

  async release(): Promise<void> {
    for (const session of this.sessions.values()) await (await session).release();
    this.sessions.clear();
    await this.copier?.release();
    this.copier = null;
  }
}

/**
 * Keeps the feeds a session declares, so extra entries (such as optimizer
 * state for eval.onnx) are not passed. On graphs that take a batch, model
 * inputs the dataset does not give (token_type_ids, position_ids, an empty
 * past_key_values.*) are filled as for a batch without a cache, and int64
 * batch tensors become int32 where the graph declares int32.
 */
export function feedsFor(session: ort.InferenceSession, graph: GraphKind, feeds: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  const metadata = new Map(session.inputMetadata.map((input) => [input.name, input]));
  const selected: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    const input = metadata.get(name);
    const tensorInput = input?.isTensor ? input : undefined;
    if (name in feeds) {
      selected[name] = BATCH_INPUTS.includes(name) ? matchIntegerType(feeds[name], tensorInput) : feeds[name];
    } else if (feeds.attention_mask && tensorInput) {
      selected[name] = fillModelInput(graph, tensorInput, feeds.attention_mask);
    } else {
      throw new RuntimeInputError("E_TRAINING", `no value for ${graph}.onnx input "${name}". The graph does not match manifest.json; compile the artifact folder again.`, { input: name });
    }
  }
  return selected;
}

/** Reads a scalar output as a number; float16 outputs (the loss of a float16 model) arrive as their bits in a Uint16Array. */
export function scalar(tensor: ort.Tensor | undefined): number {
  if (!tensor) return Number.NaN;
  if (tensor.type === "float16") return float16ToFloat32((tensor.data as Uint16Array)[0]);
  return Number(tensor.data[0]);
}
