import * as fs from "node:fs";
import { RuntimeInputError } from "../errors";

/** Label value that the compiled losses skip, as in PyTorch's cross-entropy. */
export const IGNORE_INDEX = -100;

/** One training example: token ids and the label of each position (IGNORE_INDEX where no loss is taken). */
export interface Example {
  inputIds: number[];
  labels: number[];
  /** Class of the whole sequence, for sequence classification; its token labels are then all IGNORE_INDEX. */
  classLabel?: number;
  /** `file:line` of the JSONL row, for error messages. */
  source: string;
}

/** Text-to-ids encoder, such as the Tokenizer of runtime/tokenizer.ts. The loader needs one only for string fields. */
export interface TextEncoder {
  encode(text: string): number[];
}

/**
 * Reads a JSONL dataset. Each non-empty line is an object in one of these forms:
 * - `{"input_ids": [...], "labels": [...]}`: labels are optional and default to the ids;
 * - `{"prompt": ..., "completion": ...}`: the loss covers the completion only;
 * - `{"text": "..."}`: the loss covers every token;
 * - `{"input_ids": [...], "label": 1}` or `{"text": "...", "label": 1}`:
 *   one class for the whole sequence, for sequence classification.
 * `prompt` and `completion` are both id lists, or both strings when
 * `encoder` is given; `text` needs `encoder`. Errors name the file, line and field.
 */
export function readJsonlDataset(file: string, encoder?: TextEncoder): Example[] {
  let content: string;
  try {
    content = fs.readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "not found. Check the path" : `cannot be read: ${(error as Error).message}`;
    throw new RuntimeInputError("E_DATASET", `dataset ${file} ${reason}.`, { file });
  }

  const examples: Example[] = [];
  const lines = content.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].trim();
    if (line === "") continue;
    const source = `${file}:${index + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (error) {
      throw new RuntimeInputError("E_DATASET", `${source}: invalid JSON (${(error as Error).message}). Each line must be one JSON object.`, { file, line: index + 1 });
    }
    if (row === null || typeof row !== "object" || Array.isArray(row)) {
      throw new RuntimeInputError("E_DATASET", `${source}: the line is ${Array.isArray(row) ? "an array" : JSON.stringify(row)}, but each line must be a JSON object.`, { file, line: index + 1 });
    }
    examples.push(parseRow(row as Record<string, unknown>, source, encoder));
  }
  if (examples.length === 0) {
    throw new RuntimeInputError("E_DATASET", `dataset ${file} contains no rows. Write one JSON object per line.`, { file });
  }
  return examples;
}

function parseRow(row: Record<string, unknown>, source: string, encoder: TextEncoder | undefined): Example {
  if ("label" in row) return parseClassRow(row, source, encoder);
  if ("input_ids" in row) {
    const inputIds = tokenIds(row.input_ids, "input_ids", source);
    if (inputIds.length === 0) fail(source, "input_ids", "is empty");
    if (row.labels === undefined) return { inputIds, labels: [...inputIds], source };
    const labels = labelIds(row.labels, source);
    if (labels.length !== inputIds.length) {
      fail(source, "labels", `has ${labels.length} values, but input_ids has ${inputIds.length}. Give one label per token (-100 to skip a position)`);
    }
    return { inputIds, labels, source };
  }

  if ("prompt" in row || "completion" in row) {
    if (!("prompt" in row)) fail(source, "prompt", "is missing (a row with \"completion\" needs a \"prompt\")");
    if (!("completion" in row)) fail(source, "completion", "is missing (a row with \"prompt\" needs a \"completion\")");
    if (typeof row.prompt === "string" || typeof row.completion === "string") return encodePromptCompletion(row.prompt, row.completion, source, encoder);
    const prompt = tokenIds(row.prompt, "prompt", source);
    const completion = tokenIds(row.completion, "completion", source);
    if (completion.length === 0) fail(source, "completion", "is empty, so the row has no tokens to take the loss on");
    return { inputIds: [...prompt, ...completion], labels: [...prompt.map(() => IGNORE_INDEX), ...completion], source };
  }

  if ("text" in row) {
    if (typeof row.text !== "string") fail(source, "text", `is ${describe(row.text)}, but must be a string`);
    if (!encoder) fail(source, "text", "needs a tokenizer, and none is loaded. Give token ids instead: {\"input_ids\": [...]} or {\"prompt\": [...], \"completion\": [...]}");
    const inputIds = encodeChecked(encoder, row.text, "text", source);
    if (inputIds.length === 0) fail(source, "text", "encodes to no tokens");
    return { inputIds, labels: [...inputIds], source };
  }

  const fields = Object.keys(row).join(", ") || "none";
  throw new RuntimeInputError(
    "E_DATASET",
    `${source}: the row has fields ${fields}, but a row needs "input_ids" (with optional "labels" or "label"), "prompt" and "completion", or "text" (with optional "label").`,
    { file: source },
  );
}

/** Reads a sequence classification row: `input_ids` or `text`, and the class id in `label`. */
function parseClassRow(row: Record<string, unknown>, source: string, encoder: TextEncoder | undefined): Example {
  const classLabel = row.label;
  if (!Number.isSafeInteger(classLabel) || (classLabel as number) < 0) {
    fail(source, "label", `is ${JSON.stringify(classLabel)}, but a class label must be a non-negative integer`);
  }
  if ("labels" in row) fail(source, "labels", "is given with \"label\". Give \"label\" (one class per row) for sequence classification or \"labels\" (one per token) for a language model, not both");
  if ("prompt" in row || "completion" in row) fail(source, "label", "goes with \"input_ids\" or \"text\", not with \"prompt\" and \"completion\"");

  let inputIds: number[];
  if ("input_ids" in row) {
    inputIds = tokenIds(row.input_ids, "input_ids", source);
  } else if ("text" in row) {
    if (typeof row.text !== "string") fail(source, "text", `is ${describe(row.text)}, but must be a string`);
    if (!encoder) fail(source, "text", "needs a tokenizer, and none is loaded. Give token ids instead: {\"input_ids\": [...], \"label\": ...}");
    inputIds = encodeChecked(encoder, row.text, "text", source);
  } else {
    fail(source, "label", "needs the sequence it classifies in \"input_ids\" or \"text\"");
  }
  if (inputIds.length === 0) fail(source, "input_ids" in row ? "input_ids" : "text", "has no tokens");
  return { inputIds, labels: inputIds.map(() => IGNORE_INDEX), classLabel: classLabel as number, source };
}

/**
 * Encodes prompt + completion as one text, so the tokenizer adds BOS/EOS
 * once and merges across the boundary as it would in use. The loss starts
 * where the ids of the full text stop matching the ids of the prompt alone.
 */
function encodePromptCompletion(prompt: unknown, completion: unknown, source: string, encoder: TextEncoder | undefined): Example {
  for (const [field, value] of [["prompt", prompt], ["completion", completion]] as const) {
    if (typeof value !== "string") fail(source, field, `is ${describe(value)}, but the other field is a string. Give both as strings or both as token id lists`);
    if (!encoder) fail(source, field, "is a string, which needs a tokenizer, and none is loaded. Give lists of token ids instead");
  }
  const inputIds = encodeChecked(encoder!, `${prompt as string}${completion as string}`, "completion", source);
  const promptIds = encodeChecked(encoder!, prompt as string, "prompt", source);
  let promptLength = 0;
  while (promptLength < promptIds.length && promptLength < inputIds.length && promptIds[promptLength] === inputIds[promptLength]) promptLength++;
  if (promptLength === inputIds.length) fail(source, "completion", "encodes to no tokens after the prompt");
  return { inputIds, labels: inputIds.map((id, position) => (position < promptLength ? IGNORE_INDEX : id)), source };
}

/** Encodes text and checks that the tokenizer returned valid ids, which it does not for some unknown words. */
function encodeChecked(encoder: TextEncoder, text: string, field: string, source: string): number[] {
  const ids = encoder.encode(text);
  const position = ids.findIndex((id) => !Number.isSafeInteger(id) || id < 0);
  if (position >= 0) fail(source, field, `encodes to the invalid token id ${String(ids[position])} at index ${position}. Check that the tokenizer has an unknown token for words outside its vocabulary`);
  return ids;
}

function tokenIds(value: unknown, field: string, source: string): number[] {
  if (!Array.isArray(value)) fail(source, field, `is ${describe(value)}, but must be a list of token ids`);
  value.forEach((id, position) => {
    if (!Number.isSafeInteger(id) || (id as number) < 0) fail(source, field, `has ${JSON.stringify(id)} at index ${position}, but token ids must be non-negative integers`);
  });
  return value as number[];
}

function labelIds(value: unknown, source: string): number[] {
  if (!Array.isArray(value)) fail(source, "labels", `is ${describe(value)}, but must be a list of token ids`);
  value.forEach((id, position) => {
    if (!Number.isSafeInteger(id) || ((id as number) < 0 && id !== IGNORE_INDEX)) {
      fail(source, "labels", `has ${JSON.stringify(id)} at index ${position}, but labels must be non-negative token ids or ${IGNORE_INDEX}`);
    }
  });
  return value as number[];
}

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (Array.isArray(value)) return "an array";
  return value === null ? "null" : `a ${typeof value}`;
}

function fail(source: string, field: string, problem: string): never {
  throw new RuntimeInputError("E_DATASET", `${source}: field "${field}" ${problem}.`, { file: source, field });
}
