import * as ort from "onnxruntime-node";
import { RuntimeInputError } from "../errors";
import type { TokenLimits } from "../../compiler/emit/token-limits";
import { type Example, IGNORE_INDEX } from "./dataset";
import { seededRandom } from "../sampling";

/** One row of a batch, at most the max length long. */
export interface Row {
  inputIds: number[];
  labels: number[];
  /** Class of the whole row, for sequence classification. */
  classLabel?: number;
  /** `file:line` of the example the row starts with. */
  source: string;
}

/** Token id written into padding positions; the attention mask and IGNORE_INDEX labels hide it. */
export const PAD_ID = 0;

/**
 * Cuts examples into rows of at most `maxLength` tokens. Without `pack`,
 * each example becomes one row and longer ones are truncated. With `pack`,
 * the examples are joined in order and cut into rows of exactly `maxLength`
 * tokens (the last may be shorter), so little of a batch is padding.
 */
export function buildRows(examples: readonly Example[], maxLength: number, pack: boolean): Row[] {
  if (!Number.isSafeInteger(maxLength) || maxLength < 2) {
    throw new RuntimeInputError("E_DATASET", `max length ${maxLength} is invalid: a causal LM row needs at least 2 tokens.`);
  }
  if (!pack) {
    return examples.map((example) => ({
      inputIds: example.inputIds.slice(0, maxLength),
      labels: example.labels.slice(0, maxLength),
      ...(example.classLabel !== undefined ? { classLabel: example.classLabel } : {}),
      source: example.source,
    }));
  }
  const classified = examples.find((example) => example.classLabel !== undefined);
  if (classified) {
    throw new RuntimeInputError("E_DATASET", `${classified.source}: the row has a class "label", but packing joins rows, and a class belongs to one sequence. Leave --pack out for sequence classification.`, { file: classified.source });
  }

  // NOTE: packed rows attend across example boundaries, as Hugging Face's group_texts packing does.
  const rows: Row[] = [];
  let current: Row | null = null;
  for (const example of examples) {
    let offset = 0;
    while (offset < example.inputIds.length) {
      if (current === null) current = { inputIds: [], labels: [], source: example.source };
      const take = Math.min(maxLength - current.inputIds.length, example.inputIds.length - offset);
      current.inputIds.push(...example.inputIds.slice(offset, offset + take));
      current.labels.push(...example.labels.slice(offset, offset + take));
      offset += take;
      if (current.inputIds.length === maxLength) {
        rows.push(current);
        current = null;
      }
    }
  }
  if (current !== null) rows.push(current);
  return rows;
}

/** Returns a permutation of 0..count-1 that depends only on `seed` and `epoch` (Fisher-Yates). */
export function shuffledOrder(count: number, seed: number, epoch: number): number[] {
  const random = seededRandom(Math.imul(seed, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b));
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/**
 * An endless, reproducible sequence of rows: epoch after epoch, each in
 * its own seeded order. Row number `position` of the sequence is a pure
 * function of the rows, the seed and the position, which is what lets a
 * checkpoint resume the data exactly.
 */
export class RowStream {
  private orderEpoch = -1;
  private order: number[] = [];

  constructor(
    readonly rows: readonly Row[],
    readonly seed: number,
    readonly shuffle = true,
  ) {
    if (rows.length === 0) throw new RuntimeInputError("E_DATASET", "the dataset has no rows to train on.");
  }

  /** Returns `count` rows starting at `position`, wrapping into the next epoch. */
  take(position: number, count: number): Row[] {
    const rows: Row[] = [];
    for (let p = position; p < position + count; p++) rows.push(this.rows[this.indexAt(p)]);
    return rows;
  }

  private indexAt(position: number): number {
    const epoch = Math.floor(position / this.rows.length);
    const offset = position % this.rows.length;
    if (!this.shuffle) return offset;
    if (epoch !== this.orderEpoch) {
      this.order = shuffledOrder(this.rows.length, this.seed, epoch);
      this.orderEpoch = epoch;
    }
    return this.order[offset];
  }
}

/**
 * The form of the training graphs' `labels` input: one label per token
 * [batch, sequence] (causal and masked LM), or one class per row [batch]
 * (sequence classification with `classes` classes).
 */
export type LabelTarget = { kind: "tokens" } | { kind: "classes"; classes: number };

export const TOKEN_LABELS: LabelTarget = { kind: "tokens" };

/**
 * Checks every row before any step runs, so a wrong dataset fails at once
 * and names its first bad row. The labels must be the kind `target` takes.
 * With `limits` (from the manifest), token ids and token labels must be
 * inside the vocabulary, and rows no longer than the model's positions.
 */
export function checkRows(rows: readonly Row[], target: LabelTarget, limits?: TokenLimits): void {
  for (const row of rows) {
    if (target.kind === "tokens" && row.classLabel !== undefined) {
      throw new RuntimeInputError("E_DATASET", `${row.source}: the row has a class "label", but the artifact folder trains a language-model loss on token labels. Give "input_ids" with optional "labels", or compile with sequenceClassification({ classes }).`, { file: row.source });
    }
    if (target.kind === "classes" && row.classLabel === undefined) {
      throw new RuntimeInputError("E_DATASET", `${row.source}: the row has no class "label", but the artifact folder trains sequence classification with ${target.classes} classes. Add "label": <class id> to every row.`, { file: row.source });
    }
    if (target.kind === "classes" && row.classLabel! >= target.classes) {
      throw new RuntimeInputError("E_DATASET", `${row.source}: class label ${row.classLabel} is out of range: the artifact folder classifies into ${target.classes} classes (0..${target.classes - 1}).`, { file: row.source });
    }
    if (limits) checkRowTokens(row, target, limits);
  }
}

function checkRowTokens(row: Row, target: LabelTarget, limits: TokenLimits): void {
  const { vocabSize, maxTokens } = limits;
  if (vocabSize !== null) {
    const id = row.inputIds.findIndex((token) => token >= vocabSize);
    if (id !== -1) {
      throw new RuntimeInputError("E_DATASET", `${row.source}: token id ${row.inputIds[id]} (token ${id} of the row) is out of range: the model's vocabulary has ${vocabSize} tokens (0..${vocabSize - 1}). Tokenize the data with this model's tokenizer.`, { file: row.source });
    }
    const label = target.kind === "tokens" ? row.labels.findIndex((token) => token >= vocabSize) : -1;
    if (label !== -1) {
      throw new RuntimeInputError("E_DATASET", `${row.source}: label ${row.labels[label]} (token ${label} of the row) is out of range: the model's vocabulary has ${vocabSize} tokens (0..${vocabSize - 1}), and -100 skips a position.`, { file: row.source });
    }
  }
  if (maxTokens !== null && row.inputIds.length > maxTokens) {
    throw new RuntimeInputError("E_DATASET", `${row.source}: the row has ${row.inputIds.length} tokens, but the model has positions for ${maxTokens}. Pass --max-length ${maxTokens} (or less) to truncate rows.`, { file: row.source });
  }
}

/** A batch as the compiled graphs take it, with its token counts. */
export interface Batch {
  feeds: { input_ids: ort.Tensor; attention_mask: ort.Tensor; labels: ort.Tensor };
  /** Positions with attention mask 1, padding excluded. */
  tokens: number;
  /** `file:line` of each row's first example. */
  sources: string[];
}

/**
 * Right-pads rows to the longest one and builds int64 input_ids and
 * attention_mask [rows, length], and labels [rows, length] or, for class
 * targets, [rows]. A row without a class label gets IGNORE_INDEX there.
 */
export function collate(rows: readonly Row[], target: LabelTarget = TOKEN_LABELS): Batch {
  const length = Math.max(...rows.map((row) => row.inputIds.length));
  const size = rows.length * length;
  const inputIds = new BigInt64Array(size).fill(BigInt(PAD_ID));
  const mask = new BigInt64Array(size);
  const labels = new BigInt64Array(size).fill(BigInt(IGNORE_INDEX));
  let tokens = 0;
  rows.forEach((row, r) => {
    for (let t = 0; t < row.inputIds.length; t++) {
      inputIds[r * length + t] = BigInt(row.inputIds[t]);
      mask[r * length + t] = 1n;
      labels[r * length + t] = BigInt(row.labels[t]);
    }
    tokens += row.inputIds.length;
  });
  const dims = [rows.length, length];
  const labelTensor = target.kind === "classes" ? new ort.Tensor("int64", BigInt64Array.from(rows, (row) => BigInt(row.classLabel ?? IGNORE_INDEX)), [rows.length]) : new ort.Tensor("int64", labels, dims);
  return {
    feeds: { input_ids: new ort.Tensor("int64", inputIds, dims), attention_mask: new ort.Tensor("int64", mask, dims), labels: labelTensor },
    tokens,
    sources: rows.map((row) => row.source),
  };
}

/** Splits rows into batches of `batchSize` in order, the last one possibly smaller; for evaluation. */
export function sequentialBatches(rows: readonly Row[], batchSize: number, target: LabelTarget = TOKEN_LABELS): Batch[] {
  const batches: Batch[] = [];
  for (let start = 0; start < rows.length; start += batchSize) batches.push(collate(rows.slice(start, start + batchSize), target));
  return batches;
}
