import { brand } from "./brand";
import { OptionReader } from "./options";
import { describeValue } from "./selector";
import { type SourceSite, captureSite } from "./site";

/**
 * Initial values of the virtual tokens. `random` draws from N(0, 1) as
 * PEFT's RANDOM init of an embedding. `{ text }` copies the embeddings of
 * the text's tokens, tokenized with the tokenizer.json beside the model and
 * repeated or cut to the number of virtual tokens. `{ tokenIds }` does the
 * same from ids.
 */
export type PromptInit = "random" | { readonly text: string } | { readonly tokenIds: readonly number[] };

/** Options of `promptTuning()`. */
export interface PromptTuningOptions {
  /** Number of trainable virtual tokens prepended to every input. */
  virtualTokens: number;
  /** Default "random". */
  init?: PromptInit;
}

/** A prompt-tuning method of a spec, with defaults applied. */
export interface PromptTuningMethod {
  readonly method: "prompt";
  readonly virtualTokens: number;
  readonly init: PromptInit;
  readonly site: SourceSite | undefined;
}

/** Prompt tuning (Lester et al., 2021): trainable embeddings of virtual tokens prepended to the input embeddings. */
export function promptTuning(options: PromptTuningOptions): PromptTuningMethod {
  const site = captureSite();
  const reader = new OptionReader("promptTuning", site);
  const record = reader.object(options, ["virtualTokens", "init"]);
  if (record.virtualTokens === undefined) reader.fail("virtualTokens", "is required: the number of virtual tokens, for example 8.");
  const init = record.init ?? "random";
  const isText = typeof init === "object" && init !== null && Object.keys(init).join() === "text" && typeof (init as { text: unknown }).text === "string" && (init as { text: string }).text !== "";
  const isIds =
    typeof init === "object" && init !== null && Object.keys(init).join() === "tokenIds" && Array.isArray((init as { tokenIds: unknown }).tokenIds) &&
    (init as { tokenIds: unknown[] }).tokenIds.length > 0 && (init as { tokenIds: unknown[] }).tokenIds.every((id) => Number.isInteger(id) && (id as number) >= 0);
  if (init !== "random" && !isText && !isIds) {
    reader.fail("init", `must be "random", { text: "a non-empty text" } or { tokenIds: [non-negative integers] }; got ${describeValue(init)}.`);
  }
  return brand({
    method: "prompt",
    virtualTokens: reader.number(record, "virtualTokens", { integer: true, min: 1 }, 1),
    init: init as PromptInit,
    site,
  });
}
