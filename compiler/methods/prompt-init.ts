import * as fs from "node:fs";
import * as path from "node:path";
import { Random } from "../builder/random";
import type { PromptTuningMethod } from "../dsl/prompt-tuning";
import { SpecError } from "../dsl/spec-error";
import type { Tensor } from "../onnx/tensor";
import { Tokenizer } from "../../runtime/tokenizer";

/** Initial virtual-token embeddings [tokens, hidden], row-major, and how they were made (for the manifest). */
export interface PromptValues {
  values: Float32Array;
  init: string;
  /** The token ids whose embeddings were copied, after repeating or cutting to the number of virtual tokens; null for random values. */
  tokenIds: number[] | null;
}

/**
 * Token ids of the `{ text }` or `{ tokenIds }` init, repeated or cut to
 * `tokens` as PEFT's PromptEmbedding does: a longer list keeps its first
 * `tokens` ids, a shorter one is repeated whole and then cut. The text is
 * encoded with the tokenizer.json beside the model file, special tokens
 * included (a Llama tokenizer adds BOS), as PEFT calls the tokenizer.
 */
export function promptInitIds(method: PromptTuningMethod, modelFile: string | undefined): number[] | null {
  const init = method.init;
  if (init === "random") return null;
  const ids = "tokenIds" in init ? [...init.tokenIds] : encodeInitText(init.text, method, modelFile);
  if (ids.length === 0) throw new SpecError("E_SPEC_OPTION", `promptTuning init text ${JSON.stringify((init as { text: string }).text)} encodes to no tokens. Use a longer text.`, method.site);
  const repeated: number[] = [];
  while (repeated.length < method.virtualTokens) repeated.push(...ids);
  return repeated.slice(0, method.virtualTokens);
}

function encodeInitText(text: string, method: PromptTuningMethod, modelFile: string | undefined): number[] {
  const file = modelFile ? path.join(path.dirname(modelFile), "tokenizer.json") : undefined;
  if (!file || !fs.existsSync(file)) {
    throw new SpecError(
      "E_SPEC_OPTION",
      `promptTuning init { text } needs the model's tokenizer.json beside the model file${file ? ` (${file} not found)` : ""}. Put it there, or give the ids with init: { tokenIds: [...] }.`,
      method.site,
    );
  }
  return Tokenizer.load(file).encode(text);
}

/**
 * Draws or copies the initial values. `random` draws N(0, 1), as PyTorch's
 * nn.Embedding initialises the PEFT prompt encoder, from a stream keyed by
 * the tensor name, so the values depend only on the seed. Token ids copy
 * the rows of the token embedding table.
 */
export function initialPromptValues(method: PromptTuningMethod, ids: number[] | null, table: Tensor | undefined, hidden: number, seed: number, name: string): PromptValues {
  const values = new Float32Array(method.virtualTokens * hidden);
  if (ids === null) {
    new Random(seed, name).fillNormal(values);
    return { values, init: "normal(std=1)", tokenIds: null };
  }
  if (!table) throw new SpecError("E_SPEC_MODEL", "promptTuning init from tokens: the token embedding table is not an initializer of the model, so its rows cannot be copied. Use init: \"random\".", method.site);
  const data = table.data() as ArrayLike<number>;
  ids.forEach((id, row) => {
    for (let column = 0; column < hidden; column++) values[row * hidden + column] = Number(data[id * hidden + column]);
  });
  return { values, init: `embedding rows of token ids [${ids.join(", ")}]`, tokenIds: ids };
}

/** Rejects ids outside the embedding table [vocab, hidden], naming the first bad one. */
export function checkPromptIds(method: PromptTuningMethod, ids: readonly number[], vocab: number): void {
  const bad = ids.find((id) => id >= vocab);
  if (bad !== undefined) {
    throw new SpecError("E_SPEC_OPTION", `promptTuning init: token id ${bad} is out of range for the model's vocabulary of ${vocab} tokens (ids 0..${vocab - 1}). Use ids below ${vocab}.`, method.site);
  }
}
