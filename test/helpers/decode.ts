import * as ort from "onnxruntime-node";
import { type CompiledArtifacts, int64Matrix } from "./artifacts";

/** Output of one infer.onnx step: logits [batch, tokens, vocab] and the cache for the next step. */
export interface DecodeStep {
  logits: ort.Tensor;
  cache: Record<string, ort.Tensor>;
}

/**
 * An infer.onnx session with its trainable-tensor feeds, run one step at a
 * time with an explicit cache. Cache inputs are `past_key_values.*`
 * [batch, kv_heads, past, head_dim], and each step's `present.*` output
 * becomes the next step's cache.
 */
export class Decoder {
  private readonly cacheInputs: { name: string; kvHeads: number; headDim: number }[];

  constructor(
    readonly session: ort.InferenceSession,
    readonly params: Record<string, ort.Tensor>,
  ) {
    this.cacheInputs = session.inputMetadata
      .filter((input) => input.name.startsWith("past_key_values."))
      .map((input) => {
        const shape = (input as unknown as { shape: readonly (number | string)[] }).shape;
        return { name: input.name, kvHeads: shape[1] as number, headDim: shape[3] as number };
      });
  }

  /** Returns a cache with no past tokens, as the first step of a generation reads it. */
  emptyCache(batch: number): Record<string, ort.Tensor> {
    return Object.fromEntries(this.cacheInputs.map((input) => [input.name, new ort.Tensor("float32", new Float32Array(0), [batch, input.kvHeads, 0, input.headDim])]));
  }

  /** Runs one step on `ids` with the full-length `mask`; `extra` adds feeds such as position_ids. */
  async step(ids: number[][], mask: number[][], cache: Record<string, ort.Tensor>, extra: Record<string, ort.Tensor> = {}): Promise<DecodeStep> {
    const outputs = await this.session.run({ input_ids: int64Matrix(ids), attention_mask: int64Matrix(mask), ...cache, ...extra, ...this.params });
    const next = Object.fromEntries(this.cacheInputs.map((input) => [input.name, outputs[input.name.replace("past_key_values.", "present.")] as ort.Tensor]));
    return { logits: outputs.logits as ort.Tensor, cache: next };
  }
}

/** Returns the entries of `params` that `session` reads. infer.onnx may read fewer tensors than eval.onnx, for example with a folded prefix projection. */
export function sessionParams(session: ort.InferenceSession, params: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  return Object.fromEntries(session.inputNames.filter((name) => name in params).map((name) => [name, params[name]]));
}

/** Returns the logits of row `b` at position `t` of a [batch, tokens, vocab] tensor. */
export function logitsRow(logits: ort.Tensor, b: number, t: number): Float32Array {
  const [, tokens, vocab] = logits.dims as number[];
  return (logits.data as Float32Array).subarray((b * tokens + t) * vocab, (b * tokens + t + 1) * vocab);
}

/** Largest absolute elementwise difference; throws on a length mismatch, so neither a bound from above nor one from below passes by accident. */
export function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`cannot compare arrays of ${a.length} and ${b.length} values`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** Outcome of decoding one sequence step by step. */
export interface CachedDecoding {
  /** Largest logit difference from the full pass over all positions. */
  worst: number;
  /** Tokens fed in all steps together. */
  position: number;
  /** The cache after the last step. */
  cache: Record<string, ort.Tensor>;
}

/**
 * Decodes `ids` as a batch of one: a prefill of `prefill` tokens (past
 * length 0), then one token per step. Each step's logits are compared with
 * `full`, the logits [1, ids.length, vocab] of one pass over the whole
 * sequence. With `positionIds`, each step also gets position_ids counting
 * the real tokens. `afterStep` receives each step's cache and the position
 * after it, for checks on the cache length.
 */
export async function decodeAgainstFullPass(
  decoder: Decoder,
  ids: number[],
  full: ort.Tensor,
  options: { prefill: number; positionIds?: boolean; afterStep?: (cache: Record<string, ort.Tensor>, position: number) => void },
): Promise<CachedDecoding> {
  let cache = decoder.emptyCache(1);
  let position = 0;
  let worst = 0;
  for (const count of [options.prefill, ...Array(ids.length - options.prefill).fill(1)]) {
    const chunk = ids.slice(position, position + count);
    const extra: Record<string, ort.Tensor> = options.positionIds ? { position_ids: int64Matrix([chunk.map((_, i) => position + i)]) } : {};
    const { logits, cache: next } = await decoder.step([chunk], [Array(position + count).fill(1)], cache, extra);
    for (let t = 0; t < count; t++) worst = Math.max(worst, maxDifference(logitsRow(logits, 0, t), logitsRow(full, 0, position + t)));
    cache = next;
    position += count;
    options.afterStep?.(cache, position);
  }
  return { worst, position, cache };
}

/** Returns the logits [1, ids.length, vocab] of one eval.onnx pass over `ids` as a single unpadded row. */
export async function fullPassLogits(evaluate: ort.InferenceSession, ids: number[], params: Record<string, ort.Tensor>): Promise<ort.Tensor> {
  const outputs = await evaluate.run({ input_ids: int64Matrix([ids]), attention_mask: int64Matrix([ids.map(() => 1)]), labels: int64Matrix([ids]), ...params });
  return outputs.logits as ort.Tensor;
}

/**
 * Decodes `ids` with the folder's infer.onnx (a prefill of 4 tokens, then
 * one token per step) and returns the largest logit difference from one
 * eval.onnx pass, both fed `params` (infer.onnx only the ones it reads).
 */
export async function cachedDecodingDifference(artifacts: CompiledArtifacts, params: Record<string, ort.Tensor>, ids: number[]): Promise<number> {
  const full = await fullPassLogits(await artifacts.session("eval"), ids, params);
  const infer = await artifacts.session("infer");
  return (await decodeAgainstFullPass(new Decoder(infer, sessionParams(infer, params)), ids, full, { prefill: 4 })).worst;
}

/**
 * Decodes three prompts of `ids` (8, 5 and 2 tokens), left-padded with token
 * 0 to a batch of width 8, then 20 continuation tokens per row, one step at
 * a time. Returns the largest logit difference from each row decoded alone
 * and unpadded in one pass.
 */
export async function leftPaddedBatchDifference(decoder: Decoder, ids: number[]): Promise<number> {
  const prompts = [ids.slice(0, 8), ids.slice(3, 8), ids.slice(10, 12)];
  const width = 8;
  const steps = 20;
  const continuation = (r: number, s: number): number => ids[(r * 5 + s) % ids.length];

  // Each row alone, unpadded: its prompt and continuation in one full pass.
  const alone: ort.Tensor[] = [];
  for (const [r, prompt] of prompts.entries()) {
    const sequence = [...prompt, ...Array.from({ length: steps }, (_, s) => continuation(r, s))];
    alone.push((await decoder.step([sequence], [sequence.map(() => 1)], decoder.emptyCache(1))).logits);
  }

  // The batch: prompts left-padded with token 0, then one token per row per step.
  const mask = prompts.map((prompt) => [...Array(width - prompt.length).fill(0), ...prompt.map(() => 1)]);
  const rows = prompts.map((prompt) => [...Array(width - prompt.length).fill(0), ...prompt]);
  let { logits, cache } = await decoder.step(rows, mask, decoder.emptyCache(prompts.length));
  let worst = 0;
  for (const [r, prompt] of prompts.entries()) worst = Math.max(worst, maxDifference(logitsRow(logits, r, width - 1), logitsRow(alone[r], 0, prompt.length - 1)));
  for (let s = 0; s < steps; s++) {
    for (const maskRow of mask) maskRow.push(1);
    ({ logits, cache } = await decoder.step(prompts.map((_, r) => [continuation(r, s)]), mask, cache));
    for (const [r, prompt] of prompts.entries()) worst = Math.max(worst, maxDifference(logitsRow(logits, r, 0), logitsRow(alone[r], 0, prompt.length + s)));
  }
  return worst;
}

/**
 * Runs two decoders side by side for `steps` cached steps on a batch of two
 * rows of `ids` (the second left-padded by two), and returns the largest
 * logit difference between them. Row 0 continues with ids[12 + step] and
 * row 1 with ids[3 + step], wrapping around at the end of `ids`.
 */
export async function pairedDecodingDifference(first: Decoder, second: Decoder, ids: number[], steps: number): Promise<number> {
  let firstCache = first.emptyCache(2);
  let secondCache = second.emptyCache(2);
  let rows = [ids.slice(0, 6), [0, 0, ...ids.slice(8, 12)]];
  const mask = [Array(6).fill(1), [0, 0, 1, 1, 1, 1]];
  let worst = 0;
  for (let step = 0; step < steps; step++) {
    const a = await first.step(rows, mask, firstCache);
    const b = await second.step(rows, mask, secondCache);
    worst = Math.max(worst, maxDifference(a.logits.data as Float32Array, b.logits.data as Float32Array));
    firstCache = a.cache;
    secondCache = b.cache;
    rows = [[ids[(12 + step) % ids.length]], [ids[(3 + step) % ids.length]]];
    for (const maskRow of mask) maskRow.push(1);
  }
  return worst;
}
