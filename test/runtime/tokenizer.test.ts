import * as fs from "node:fs";
import * as path from "node:path";
import { Tokenizer } from "../../runtime/tokenizer";
import { readJson } from "../helpers/artifacts";
import { CORPUS_DIR, describeCorpus } from "../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../helpers/temp";

afterAll(removeTempDirs);

interface GenerationCase {
  prompt: string | null;
  prompt_ids: number[];
  ids: number[];
  new_ids: number[];
  text: string;
}

describeCorpus("Tokenizer on aidreams260K", () => {
  const dir = path.join(CORPUS_DIR, "aidreams260K");
  const tokenizer = Tokenizer.load(path.join(dir, "tokenizer.json"));
  const reference = readJson<{ cases: GenerationCase[] }>(path.join(dir, "reference", "generation.json")).cases;

  test("special token ids come from tokenizer_config.json", () => {
    expect(tokenizer.bosTokenId).toBe(1);
    expect(tokenizer.eosTokenId).toBe(2);
    // No pad token is configured, so padding uses <unk>.
    expect(tokenizer.padTokenId).toBe(0);
  });

  test("encode reproduces the reference prompt ids with BOS", () => {
    for (const entry of reference) expect(tokenizer.encode(entry.prompt ?? "")).toEqual(entry.prompt_ids);
  });

  test("decode reproduces the reference texts", () => {
    for (const entry of reference) expect(tokenizer.decode(entry.ids)).toBe(entry.text);
  });

  test.each(["héllo wörld 123", "  two  spaces\nand a newline", "emoji 🎉, CJK 中文, Greek αβγ", "tabs\tand punctuation!?"])("round trip of %j", (text) => {
    const ids = tokenizer.encode(text);
    expect(ids[0]).toBe(1);
    expect(tokenizer.decode(ids)).toBe(text);
  });
});

describe("Tokenizer.load", () => {
  test("missing file is rejected", () => {
    expect(() => Tokenizer.load(path.join(makeTempDir(), "tokenizer.json"))).toThrow(expect.objectContaining({ code: "E_FILE_NOT_FOUND" }));
  });

  test("invalid JSON is rejected", () => {
    const file = path.join(makeTempDir(), "tokenizer.json");
    fs.writeFileSync(file, "{ not json");
    expect(() => Tokenizer.load(file)).toThrow(expect.objectContaining({ code: "E_TOKENIZER", message: expect.stringContaining("not valid JSON") }));
  });
});
