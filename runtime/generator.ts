import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { PeftcError } from "../compiler/errors";
import type { Manifest } from "../compiler/emit/manifest";
import { float16ToFloat32 } from "../compiler/onnx/half";
import { type Feeds, PrefixFolding, loadParamFeeds } from "./param-feeds";
import { type SamplingSettings, seededRandom, selectToken } from "./sampling";
import { DeviceCopier } from "./device-copy";
import { checkParameterShapes } from "./param-shapes";
import { type DeviceRequest, type ExecutionDevice, type SkippedDevice, openSession } from "./session";
import { releaseOutputs, releaseReplaced } from "./trainer/placement";
import { TextStream } from "./text-stream";
import { Tokenizer } from "./tokenizer";

/** Why a row stopped: an EOS token, a stop string, or the token limit. */
export type FinishReason = "eos" | "stop" | "length";

/** One streaming event: the tokens a row got in one step and the text they added. */
export interface TokenEvent {
  row: number;
  /** New token ids, empty in a row's last event when it only flushes held-back text. */
  tokenIds: number[];
  /** Text delta. A row's deltas concatenate to its final text. Empty without a tokenizer. */
  text: string;
  /** Set on the row's last event. */
  finishReason: FinishReason | null;
}

/** The result for one prompt. */
export interface Generation {
  promptIds: number[];
  /** Generated ids, including the EOS token or the token that completed a stop string. */
  ids: number[];
  /** Generated text without special tokens, cut before a stop string, or null without a tokenizer. */
  text: string | null;
  finishReason: FinishReason;
}

export interface GenerateOptions {
  /** Maximum number of generated tokens per prompt (default 64). */
  maxNewTokens?: number;
  /** Softmax temperature. 0, the default, decodes greedily. */
  temperature?: number;
  /** Sample from the k most likely tokens. 0, the default, keeps all. */
  topK?: number;
  /** Nucleus sampling threshold in (0, 1]. 1, the default, keeps all. */
  topP?: number;
  /** Repetition penalty, usually at least 1. 1, the default, turns it off. */
  repetitionPenalty?: number;
  /** Seed of the sampling random number generator, a 32-bit unsigned integer (default 0). */
  seed?: number;
  /** Strings that end a row. The text is cut before the first one. Needs a tokenizer. */
  stop?: string[];
  /** Tokens that end a row (default: the tokenizer's EOS token). Pass [] to never stop on EOS. */
  eosTokenIds?: number[];
  /**
   * Parameters for this call only, by input name (a safetensors file or
   * feeds, in host memory or, on WebGPU, in device buffers), which override
   * the generator's. The prefixes prefix.onnx computes are kept per tensor
   * object, so pass new tensors rather than changing one in place.
   */
  params?: string | Feeds;
  /** Called after each step for every row that got a token. */
  onToken?: (event: TokenEvent) => void;
}

export interface GeneratorOptions {
  /** Defaults to "cpu". */
  device?: DeviceRequest;
  /** A tokenizer or a tokenizer.json path (default: tokenizer.json in the artifact folder, when present). Null means token ids only. */
  tokenizer?: Tokenizer | string | null;
  /** Parameters as a safetensors file or feeds (default: the folder's params.safetensors). */
  params?: string | Feeds;
}

/** Feed input names that carry the batch and cache rather than parameters. */
const DATA_INPUTS = new Set(["input_ids", "attention_mask", "position_ids"]);

/** Returns the output that continues a cache input: past_key_values.0.key → present.0.key, past_0 → present_0. */
function presentName(pastName: string): string {
  return pastName.startsWith("past_key_values.") ? pastName.replace("past_key_values.", "present.") : pastName.replace(/^past/, "present");
}

interface CacheInput {
  name: string;
  type: "float32" | "float16";
  /** Dims with the batch axis as -1 and the past axis as 0. */
  emptyDims: number[];
}

type IntegerType = "int64" | "int32";

function readManifest(dir: string): Manifest {
  const file = path.join(dir, "manifest.json");
  if (!fs.existsSync(file)) throw new PeftcError("E_ARTIFACT", `${dir} has no manifest.json, so it is not an artifact folder. Write one with \`peftc compile\`.`, { file: dir });
  const manifest = JSON.parse(fs.readFileSync(file, "utf8")) as Manifest;
  if (manifest.format !== "peftc.artifacts") throw new PeftcError("E_ARTIFACT", `${file} is not a peftc manifest (format "${String(manifest.format)}").`, { file });
  if (!manifest.graphs.infer) {
    throw new PeftcError("E_ARTIFACT", `${dir} has no infer.onnx: the model is not a decoder, or the spec set inference.kvCache to false. Recompile a decoder with the KV cache on.`, { file: dir });
  }
  return manifest;
}

function integerTensor(type: IntegerType, rows: readonly (readonly number[])[]): ort.Tensor {
  const dims = [rows.length, rows[0].length];
  if (type === "int32") return new ort.Tensor("int32", Int32Array.from(rows.flat()), dims);
  return new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), dims);
}

/** Returns the logits of `position` in `row` of a [batch, sequence, vocab] tensor, widened to float64. */
function logitsRow(logits: ort.Tensor, row: number, position: number): Float64Array {
  const [, sequence, vocab] = logits.dims as number[];
  const start = (row * sequence + position) * vocab;
  if (logits.type === "float16") return Float64Array.from((logits.data as Uint16Array).subarray(start, start + vocab), float16ToFloat32);
  return Float64Array.from((logits.data as Float32Array).subarray(start, start + vocab));
}

/** Positions as Hugging Face generate derives them for left padding: cumsum(mask) - 1, clipped at 0. */
function positionsFromMask(mask: readonly number[]): number[] {
  let count = 0;
  return mask.map((bit) => {
    count += bit;
    return Math.max(0, count - 1);
  });
}

function checkSettings(options: GenerateOptions): Required<Pick<GenerateOptions, "maxNewTokens" | "seed">> & SamplingSettings {
  const settings = {
    maxNewTokens: options.maxNewTokens ?? 64,
    temperature: options.temperature ?? 0,
    topK: options.topK ?? 0,
    topP: options.topP ?? 1,
    repetitionPenalty: options.repetitionPenalty ?? 1,
    seed: options.seed ?? 0,
  };
  const fail = (message: string): never => {
    throw new PeftcError("E_GENERATE", message);
  };
  if (!Number.isInteger(settings.maxNewTokens) || settings.maxNewTokens < 0) fail(`maxNewTokens is ${settings.maxNewTokens}; it must be an integer of at least 0.`);
  if (!Number.isFinite(settings.temperature) || settings.temperature < 0) fail(`temperature is ${settings.temperature}; it must be a finite number of at least 0 (0 decodes greedily).`);
  if (!Number.isInteger(settings.topK) || settings.topK < 0) fail(`topK is ${settings.topK}; it must be an integer of at least 0 (0 keeps all tokens).`);
  if (!(settings.topP > 0 && settings.topP <= 1)) fail(`topP is ${settings.topP}; it must be in (0, 1].`);
  if (!Number.isFinite(settings.repetitionPenalty) || settings.repetitionPenalty <= 0) fail(`repetitionPenalty is ${settings.repetitionPenalty}; it must be a finite number above 0 (1 turns it off).`);
  if (!Number.isInteger(settings.seed) || settings.seed < 0 || settings.seed > 0xffffffff) fail(`seed is ${settings.seed}; it must be an integer from 0 to 2^32 - 1.`);
  return settings;
}

/**
 * KV-cached text generation over an artifact folder's infer.onnx. One
 * session serves every call, and each call may bring its own adapter
 * tensors, because they are graph inputs unless the spec merged them.
 */
export class Generator {
  private constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    private readonly session: ort.InferenceSession,
    /** The provider the session runs on. */
    readonly device: ExecutionDevice,
    /** Providers that `auto` tried first and skipped. */
    readonly skippedDevices: SkippedDevice[],
    readonly tokenizer: Tokenizer | null,
    private readonly defaultParams: Feeds,
    private readonly paramInputs: string[],
    private readonly cacheInputs: CacheInput[],
    private readonly integerTypes: Record<string, IntegerType>,
    private readonly folding: PrefixFolding | null,
    /** Copier that uploads each call's parameters once on WebGPU, where the cache stays on the device, or null elsewhere. */
    private readonly copier: DeviceCopier | null,
  ) {}

  private released = false;

  /** Opens `dir`'s infer.onnx on the requested device, with its parameters and tokenizer. */
  static async open(dir: string, options: GeneratorOptions = {}): Promise<Generator> {
    const manifest = readManifest(dir);
    // On WebGPU the present.* outputs stay in device buffers and come back as the next step's past; only the logits come to the host.
    const outputs = manifest.graphs.infer!.outputs;
    const sessionOptions = (device: ExecutionDevice): ort.InferenceSession.SessionOptions =>
      device === "webgpu" ? { preferredOutputLocation: Object.fromEntries(outputs.map((name) => [name, name === "logits" ? "cpu" : "gpu-buffer"])) } : {};
    const opened = await openSession(path.join(dir, manifest.graphs.infer!.file), { device: options.device, sessionOptions });
    const session = opened.session;

    const parameterNames = new Set(manifest.parameters.map((parameter) => parameter.name));
    const folding = manifest.graphs.prefix ? await PrefixFolding.open(path.join(dir, manifest.graphs.prefix.file)) : null;
    const paramInputs: string[] = [];
    const cacheInputs: CacheInput[] = [];
    const integerTypes: Record<string, IntegerType> = {};
    for (const input of session.inputMetadata) {
      const { name } = input;
      const type = input.isTensor ? (input as { type: string }).type : "non-tensor";
      if (DATA_INPUTS.has(name)) {
        if (type !== "int64" && type !== "int32") throw new PeftcError("E_ARTIFACT", `infer.onnx input ${name} is ${type}, but the generator feeds int64 or int32 only.`, { input: name });
        integerTypes[name] = type;
      } else if (parameterNames.has(name)) {
        paramInputs.push(name);
      } else if (folding?.outputs.includes(name)) {
        // A prefix that prefix.onnx computes from the projection's parameters.
      } else if (name.startsWith("past")) {
        if (type !== "float32" && type !== "float16") throw new PeftcError("E_ARTIFACT", `cache input ${name} is ${type}, but the generator supports float32 and float16 caches only.`, { input: name });
        // A named batch axis gets the batch size. Every other named axis is the past length, 0 before the prefill.
        const shape = (input as { shape: readonly (number | string)[] }).shape;
        const emptyDims = shape.map((dim) => (typeof dim === "number" ? dim : String(dim).toLowerCase().includes("batch") ? -1 : 0));
        cacheInputs.push({ name, type, emptyDims });
      } else {
        throw new PeftcError("E_ARTIFACT", `infer.onnx input ${name} is neither a token, mask, position or cache input nor a parameter in manifest.json, so the generator cannot feed it.`, { input: name });
      }
    }
    for (const input of cacheInputs) {
      if (!session.outputNames.includes(presentName(input.name))) {
        throw new PeftcError("E_ARTIFACT", `infer.onnx has cache input ${input.name} but no ${presentName(input.name)} output to continue it.`, { input: input.name });
      }
    }
    for (const required of ["input_ids", "attention_mask"]) {
      if (!(required in integerTypes)) throw new PeftcError("E_ARTIFACT", `infer.onnx has no ${required} input.`, { input: required });
    }

    const paramsSource = options.params ?? path.join(dir, "params.safetensors");
    if (typeof options.params === "string" && !fs.existsSync(options.params)) {
      throw new PeftcError("E_FILE_NOT_FOUND", `params file ${options.params} not found. Pass params.safetensors or a checkpoint that peftc train wrote.`, { file: options.params });
    }
    let defaultParams: Feeds = {};
    if (typeof paramsSource !== "string") defaultParams = paramsSource;
    else if (paramInputs.length > 0 || fs.existsSync(paramsSource)) defaultParams = loadParamFeeds(paramsSource);
    checkParameterShapes(manifest.parameters, defaultParams, typeof paramsSource === "string" ? paramsSource : "params", "E_GENERATE");
    const copier = opened.device === "webgpu" ? new DeviceCopier("webgpu") : null;
    if (options.params !== undefined) rejectFoldedChanges(dir, parameterNames, new Set([...paramInputs, ...(folding?.inputs ?? [])]), await hostCopies(defaultParams, copier, opened.device));
    const tokenizer = Generator.resolveTokenizer(dir, options.tokenizer);
    return new Generator(dir, manifest, session, opened.device, opened.skipped, tokenizer, defaultParams, paramInputs, cacheInputs, integerTypes, folding, copier);
  }

  private static resolveTokenizer(dir: string, option: GeneratorOptions["tokenizer"]): Tokenizer | null {
    if (option === null) return null;
    if (option instanceof Tokenizer) return option;
    if (typeof option === "string") return Tokenizer.load(option);
    const beside = path.join(dir, "tokenizer.json");
    return fs.existsSync(beside) ? Tokenizer.load(beside) : null;
  }

  /** Names of the parameter inputs of infer.onnx and prefix.onnx, which a call's `params` may override. */
  get parameterInputs(): readonly string[] {
    return [...this.paramInputs, ...(this.folding?.inputs ?? [])];
  }

  /** Frees the onnxruntime sessions. Later calls to `generate` fail. */
  async release(): Promise<void> {
    this.released = true;
    await this.session.release();
    await this.folding?.release();
    await this.copier?.release();
  }

  /**
   * Merges a call's parameters over the defaults, checks their names and
   * the shapes the manifest lists, and adds the prefixes
   * prefix.onnx computes, if the folder has one.
   */
  private async paramFeeds(override: GenerateOptions["params"]): Promise<Feeds> {
    const extra = typeof override === "string" ? loadParamFeeds(override) : (override ?? {});
    const accepted = this.parameterInputs;
    checkParameterShapes(this.manifest.parameters, extra, typeof override === "string" ? override : "params", "E_GENERATE");
    // prefix.onnx runs on the CPU, and the folded-value check reads values, so both take host copies of device tensors.
    const hostExtra = await hostCopies(extra, this.copier, this.device);
    rejectFoldedChanges(this.dir, new Set(this.manifest.parameters.map((parameter) => parameter.name)), new Set(accepted), hostExtra);
    for (const name of Object.keys(extra)) {
      if (!accepted.includes(name)) {
        throw new PeftcError("E_GENERATE", `parameter ${name} is not a parameter input of infer.onnx or prefix.onnx (parameter inputs: ${accepted.join(", ") || "none"}).`, { tensor: name });
      }
    }
    const feeds: Feeds = {};
    for (const name of this.paramInputs) {
      const tensor = extra[name] ?? this.defaultParams[name];
      if (!tensor) throw new PeftcError("E_GENERATE", `no value for parameter input ${name}: pass a params file that contains it.`, { tensor: name });
      feeds[name] = tensor;
    }
    if (this.folding) {
      const folded = await this.folding.fold(await hostCopies({ ...this.defaultParams, ...hostExtra }, this.copier, this.device));
      Object.assign(feeds, folded);
    }
    return feeds;
  }

  private emptyCache(batch: number): Feeds {
    const cache: Feeds = {};
    for (const input of this.cacheInputs) {
      const dims = input.emptyDims.map((dim) => (dim === -1 ? batch : dim));
      cache[input.name] = input.type === "float16" ? new ort.Tensor("float16", new Uint16Array(0), dims) : new ort.Tensor("float32", new Float32Array(0), dims);
    }
    return cache;
  }

  /** Encodes string prompts with the tokenizer and copies id prompts. */
  private encodePrompts(prompts: readonly (string | readonly number[])[]): number[][] {
    return prompts.map((prompt, row) => {
      let ids: number[];
      if (typeof prompt === "string") {
        if (!this.tokenizer) throw new PeftcError("E_GENERATE", "text prompts need a tokenizer: pass one when opening the generator, or pass token ids.");
        ids = this.tokenizer.encode(prompt);
      } else {
        ids = [...prompt];
      }
      if (ids.length === 0) throw new PeftcError("E_GENERATE", `prompt ${row} has no tokens, but the model needs at least one (a BOS token, for example).`, { row });
      const vocabSize = this.manifest.tokenLimits?.vocabSize ?? null;
      const outside = vocabSize === null ? -1 : ids.findIndex((id) => !Number.isSafeInteger(id) || id < 0 || id >= vocabSize);
      if (outside !== -1) {
        throw new PeftcError("E_GENERATE", `prompt ${row} has token id ${ids[outside]} at position ${outside}, but the model's vocabulary has ${vocabSize} tokens (0..${vocabSize! - 1}). Encode prompts with this model's tokenizer.`, { row });
      }
      return ids;
    });
  }

  /**
   * Checks that each prompt and its new tokens fit the model's learned
   * positions, where it has a table of them: past it, the position Gather
   * fails on the CPU and reads garbage on WebGPU.
   */
  private checkLength(promptIds: readonly number[][], maxNewTokens: number): void {
    const maxTokens = this.manifest.tokenLimits?.maxTokens ?? null;
    if (maxTokens === null) return;
    const row = promptIds.findIndex((ids) => ids.length + maxNewTokens > maxTokens);
    if (row === -1) return;
    const length = promptIds[row].length;
    const fix = length < maxTokens ? `Lower maxNewTokens to ${maxTokens - length} or shorten the prompt.` : "Shorten the prompt.";
    throw new PeftcError("E_GENERATE", `prompt ${row} has ${length} tokens and maxNewTokens is ${maxNewTokens}, but the model has positions for ${maxTokens} tokens. ${fix}`, { row });
  }

  /**
   * Generates a continuation for each prompt (text, or token ids) in one
   * batch. Prompts of different lengths are padded on the left and masked,
   * so each row decodes as it would alone. Sampling draws from one seeded
   * generator, row by row in each step, so a row's samples depend on the
   * whole batch.
   */
  async generate(prompts: readonly (string | readonly number[])[], options: GenerateOptions = {}): Promise<Generation[]> {
    if (this.released) throw new PeftcError("E_GENERATE", "the generator was released; open a new one with Generator.open.");
    const settings = checkSettings(options);
    if (prompts.length === 0) return [];
    const stops = options.stop ?? [];
    if (stops.some((stop) => stop.length === 0)) throw new PeftcError("E_GENERATE", "stop strings must not be empty.");
    if (stops.length > 0 && !this.tokenizer) throw new PeftcError("E_GENERATE", "stop strings need a tokenizer to decode the output.");
    const eos = new Set(options.eosTokenIds ?? (this.tokenizer?.eosTokenId != null ? [this.tokenizer.eosTokenId] : []));
    const promptIds = this.encodePrompts(prompts);
    this.checkLength(promptIds, settings.maxNewTokens);
    const hostParams = await this.paramFeeds(options.params);
    const params = this.copier ? await this.copier.toDevice(hostParams) : hostParams;
    try {
      return await this.decode(promptIds, params, settings, stops, eos, options.onToken);
    } finally {
      // Frees the uploaded copies only, because device tensors the caller passed remain the caller's.
      if (params !== hostParams) releaseReplaced(params, hostParams);
    }
  }

  /** Runs the decoding loop of `generate`, with the parameters already where the session reads them. */
  private async decode(
    promptIds: readonly number[][],
    params: Feeds,
    settings: ReturnType<typeof checkSettings>,
    stops: readonly string[],
    eos: ReadonlySet<number>,
    onToken: GenerateOptions["onToken"],
  ): Promise<Generation[]> {
    const random = seededRandom(settings.seed);
    const batch = promptIds.length;
    const width = Math.max(...promptIds.map((ids) => ids.length));
    const padId = this.tokenizer?.padTokenId ?? 0;
    // NOTE: left-padded rows match the same prompts alone on rewritten graphs and on aidreams260K's cached export.
    // On onnxruntime-genai's float16 Qwen export (GroupQueryAttention) one padded row diverged after 7 tokens, cause not found.
    const mask = promptIds.map((ids) => [...Array<number>(width - ids.length).fill(0), ...ids.map(() => 1)]);
    let stepIds = promptIds.map((ids) => [...Array<number>(width - ids.length).fill(padId), ...ids]);
    let stepPositions = mask.map(positionsFromMask);

    const generated: number[][] = promptIds.map(() => []);
    const finished: (FinishReason | null)[] = promptIds.map(() => null);
    const streams = this.tokenizer ? promptIds.map((ids) => new TextStream(this.tokenizer!, ids, stops)) : null;
    let cache = this.emptyCache(batch);

    try {
      for (let step = 0; step < settings.maxNewTokens; step++) {
        const feeds: Feeds = { ...cache, ...params, input_ids: integerTensor(this.integerTypes.input_ids, stepIds), attention_mask: integerTensor(this.integerTypes.attention_mask, mask) };
        if (this.integerTypes.position_ids) feeds.position_ids = integerTensor(this.integerTypes.position_ids, stepPositions);
        const outputs = await this.session.run(feeds);
        // The past this step read is spent; its device buffers (WebGPU) are freed, and the presents become the cache.
        releaseOutputs(cache);
        cache = Object.fromEntries(this.cacheInputs.map((input) => [input.name, outputs[presentName(input.name)] as ort.Tensor]));
        const logits = outputs.logits as ort.Tensor;
        const last = (logits.dims[1] as number) - 1;

        for (let row = 0; row < batch; row++) {
          if (finished[row] !== null) continue;
          const token = selectToken(logitsRow(logits, row, last), [...promptIds[row], ...generated[row]], settings, random);
          generated[row].push(token);
          let text = streams ? streams[row].update(generated[row]) : "";
          if (eos.has(token)) finished[row] = "eos";
          else if (streams?.[row].stopped) finished[row] = "stop";
          else if (generated[row].length === settings.maxNewTokens) finished[row] = "length";
          if (finished[row] !== null && streams) text += streams[row].flush();
          onToken?.({ row, tokenIds: [token], text, finishReason: finished[row] });
        }
        if (finished.every((reason) => reason !== null)) break;

        // Finished rows keep decoding a pad token, as transformers' generate does, so the batch stays rectangular.
        stepIds = generated.map((ids, row) => [finished[row] === null ? ids[ids.length - 1] : padId]);
        for (const maskRow of mask) maskRow.push(1);
        stepPositions = mask.map((maskRow) => [maskRow.reduce((sum, bit) => sum + bit, 0) - 1]);
      }
    } finally {
      releaseOutputs(cache);
    }

    return promptIds.map((ids, row) => ({
      promptIds: ids,
      ids: generated[row],
      text: streams ? streams[row].finalText : null,
      finishReason: finished[row] ?? "length",
    }));
  }
}

/** Returns `params` with device tensors replaced by host copies, which only a generator on the same device can make. */
async function hostCopies(params: Feeds, copier: DeviceCopier | null, device: ExecutionDevice): Promise<Feeds> {
  const onDevice = Object.keys(params).filter((name) => params[name].location !== "cpu");
  if (onDevice.length === 0) return params;
  if (!copier) {
    throw new PeftcError("E_GENERATE", `parameter ${onDevice[0]} is in GPU memory (location "${params[onDevice[0]].location}"), but this generator runs on ${device}. Pass host tensors, or open the generator on the device that contains them.`, { tensor: onDevice[0] });
  }
  return copier.toHost(params);
}

/**
 * Rejects parameters that infer.onnx cannot take because compile folded
 * them into its weights (`inference.mergeAdapters`), when their values
 * differ from the folded ones: generating would silently use the values
 * of compile time instead.
 */
function rejectFoldedChanges(dir: string, trainable: ReadonlySet<string>, accepted: ReadonlySet<string>, params: Feeds): void {
  const folded = Object.keys(params).filter((name) => trainable.has(name) && !accepted.has(name));
  if (folded.length === 0) return;
  const compiledFile = path.join(dir, "params.safetensors");
  const compiled = fs.existsSync(compiledFile) ? loadParamFeeds(compiledFile) : {};
  const changed = folded.filter((name) => !sameValues(params[name], compiled[name]));
  if (changed.length === 0) return;
  throw new PeftcError(
    "E_GENERATE",
    `infer.onnx was compiled with inference.mergeAdapters, so ${changed.slice(0, 3).join(", ")}${changed.length > 3 ? ` and ${changed.length - 3} more` : ""} are folded into its weights, and the given parameters cannot change them. ` +
      "To generate with trained values, compile again with `peftc compile MODEL --spec SPEC --params TRAINED.safetensors --out DIR`, which folds the trained tensors in, or compile without mergeAdapters.",
    { tensor: changed[0] },
  );
}

function sameValues(a: ort.Tensor, b: ort.Tensor | undefined): boolean {
  if (!b || a.type !== b.type || a.dims.join() !== b.dims.join()) return false;
  const x = a.data as ArrayLike<number>;
  const y = b.data as ArrayLike<number>;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
