import * as fs from "node:fs";
import * as path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { PeftcError } from "../compiler/errors";

/** Settings of tokenizer_config.json that encoding and generation read. */
interface TokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  [key: string]: unknown;
}

function tokenContent(token: TokenizerConfig["bos_token"]): string | null {
  if (token === null || token === undefined) return null;
  return typeof token === "string" ? token : token.content;
}

function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new PeftcError("E_FILE_NOT_FOUND", `${file} not found. Check the path.`, { file });
    throw new PeftcError("E_TOKENIZER", `cannot read ${file}: ${(error as Error).message}`, { file });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new PeftcError("E_TOKENIZER", `${file} is not valid JSON: ${(error as Error).message}`, { file });
  }
}

/**
 * A Hugging Face tokenizer (tokenizer.json, with tokenizer_config.json
 * beside it when present), run by the pure-JavaScript
 * @huggingface/tokenizers package, so it needs no network and no native code.
 */
export class Tokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** The pad token, else the unknown token, else 0. Left padding is masked, so it only has to be a valid id. */
  readonly padTokenId: number;

  private constructor(
    private readonly inner: HfTokenizer,
    private readonly config: TokenizerConfig,
    readonly file: string,
  ) {
    const idOf = (token: TokenizerConfig["bos_token"]): number | null => {
      const content = tokenContent(token);
      return content === null ? null : (inner.token_to_id(content) ?? null);
    };
    this.bosTokenId = idOf(config.bos_token);
    this.eosTokenId = idOf(config.eos_token);
    this.padTokenId = idOf(config.pad_token) ?? idOf(config.unk_token) ?? 0;
  }

  /** Loads `file` (a tokenizer.json) and the tokenizer_config.json in its folder, if there is one. */
  static load(file: string): Tokenizer {
    const json = readJsonFile(file);
    const configFile = path.join(path.dirname(file), "tokenizer_config.json");
    const config = (fs.existsSync(configFile) ? readJsonFile(configFile) : {}) as TokenizerConfig;
    let inner: HfTokenizer;
    try {
      inner = new HfTokenizer(json as object, config);
    } catch (error) {
      throw new PeftcError("E_TOKENIZER", `${file} is not a tokenizer.json that @huggingface/tokenizers can load: ${(error as Error).message}`, { file });
    }
    return new Tokenizer(inner, config, file);
  }

  /**
   * Encodes `text` to token ids. BOS and EOS follow `add_bos_token` and
   * `add_eos_token` of tokenizer_config.json where it sets them, and the
   * post-processor of tokenizer.json otherwise, as transformers' Llama
   * tokenizers do.
   */
  encode(text: string): number[] {
    const setsSpecials = typeof this.config.add_bos_token === "boolean" || typeof this.config.add_eos_token === "boolean";
    if (!setsSpecials) return this.inner.encode(text).ids;
    const ids = this.inner.encode(text, { add_special_tokens: false }).ids;
    if (this.config.add_bos_token === true && this.bosTokenId !== null) ids.unshift(this.bosTokenId);
    if (this.config.add_eos_token === true && this.eosTokenId !== null) ids.push(this.eosTokenId);
    return ids;
  }

  /** Decodes ids to text, skipping special tokens (BOS, EOS, padding). */
  decode(ids: readonly number[]): string {
    return this.inner.decode([...ids], { skip_special_tokens: true });
  }
}
