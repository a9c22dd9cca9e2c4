import * as fs from "node:fs";
import * as path from "node:path";
import { defineSpec, lora, promptTuning, select } from "../../compiler/dsl";
import { writeSafetensors } from "../../compiler/emit/safetensors";
import { DataType } from "../../compiler/onnx/dtype";
import { Tensor } from "../../compiler/onnx/tensor";
import { Generator } from "../../runtime";
import { checkRows } from "../../runtime/data/batches";
import { compileForTest } from "../helpers/artifacts";
import { runPeftc } from "../helpers/cli";
import { makeTempDir, removeTempDirs } from "../helpers/temp";
import { writeJsonl } from "../helpers/training";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../fixtures");
const GPT2 = path.join(FIXTURES, "gpt2-tiny-op17.onnx");
const LLAMA = path.join(FIXTURES, "llama-tiny.onnx");
const qv = (rank: number) => defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank, alpha: 2 * rank })] });

describe("manifest token limits", () => {
  test("learned positions less virtual tokens", () => {
    const plain = compileForTest(GPT2, qv(2)).manifest.tokenLimits!;
    expect(plain.vocabSize).toBeGreaterThan(0);
    expect(plain.maxTokens).toBeGreaterThan(8);
    const prompted = compileForTest(GPT2, defineSpec({ methods: [promptTuning({ virtualTokens: 8 })] })).manifest.tokenLimits!;
    expect(prompted).toEqual({ vocabSize: plain.vocabSize, maxTokens: plain.maxTokens! - 8 });
  });

  test("rotary model has no bound", () => {
    expect(compileForTest(LLAMA, qv(2)).manifest.tokenLimits).toEqual({ vocabSize: 512, maxTokens: null });
  });

  test("checkRows names the bad row", () => {
    const limits = { vocabSize: 10, maxTokens: 4 };
    const row = (inputIds: number[], labels = inputIds) => ({ inputIds, labels, source: "data.jsonl:3" });
    expect(() => checkRows([row([1, 2, 9], [-100, 2, 9])], { kind: "tokens" }, limits)).not.toThrow();
    expect(() => checkRows([row([1, 12, 3])], { kind: "tokens" }, limits)).toThrow("data.jsonl:3: token id 12 (token 1 of the row) is out of range: the model's vocabulary has 10 tokens (0..9).");
    expect(() => checkRows([row([1, 2, 3], [1, 2, 40])], { kind: "tokens" }, limits)).toThrow("data.jsonl:3: label 40 (token 2 of the row) is out of range");
    expect(() => checkRows([row([1, 2, 3, 4, 5])], { kind: "tokens" }, limits)).toThrow("data.jsonl:3: the row has 5 tokens, but the model has positions for 4. Pass --max-length 4 (or less) to truncate rows.");
    // Folders compiled before the manifest had limits are not checked.
    expect(() => checkRows([row([1, 99])], { kind: "tokens" })).not.toThrow();
  });
});

describe("CLI input checks", () => {
  let gpt2: string;
  let vocabSize: number;
  let maxTokens: number;

  beforeAll(async () => {
    gpt2 = path.join(makeTempDir(), "gpt2");
    const spec = path.join(makeTempDir(), "spec.ts");
    fs.writeFileSync(spec, 'import { defineSpec, lora, select } from "peftc";\nexport default defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 2 })] });\n');
    expect((await runPeftc("compile", GPT2, "--spec", spec, "--out", gpt2, "--no-type-check")).status).toBe(0);
    const limits = JSON.parse(fs.readFileSync(path.join(gpt2, "manifest.json"), "utf8")).tokenLimits;
    vocabSize = limits.vocabSize;
    maxTokens = limits.maxTokens;
  });

  test("train and eval: id past vocabulary", async () => {
    const data = writeJsonl([{ input_ids: [1, 2, 3] }, { input_ids: [4, vocabSize + 5, 6] }]);
    const trained = await runPeftc("train", gpt2, "--data", data, "--steps", "1", "--batch-size", "2", "--out", makeTempDir());
    const evaluated = await runPeftc("eval", gpt2, "--data", data);
    for (const result of [trained, evaluated]) {
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(`${data}:2: token id ${vocabSize + 5} (token 1 of the row) is out of range`);
      expect(result.stderr).not.toContain("internal error");
    }
  });

  test("train: default max length", async () => {
    const data = writeJsonl([{ input_ids: Array.from({ length: maxTokens + 20 }, (_, i) => i % vocabSize) }]);
    const out = makeTempDir();
    const result = await runPeftc("train", gpt2, "--data", data, "--steps", "1", "--batch-size", "1", "--out", out, "--no-progress");
    expect(result.status).toBe(0);
    const tooLong = await runPeftc("train", gpt2, "--data", data, "--steps", "1", "--batch-size", "1", "--max-length", String(maxTokens + 1), "--out", makeTempDir());
    expect(tooLong.status).toBe(2);
    expect(tooLong.stderr).toContain(`the row has ${maxTokens + 1} tokens, but the model has positions for ${maxTokens}`);
  });

  test("generate: too many new tokens", async () => {
    const result = await runPeftc("generate", gpt2, "--prompt", "123", "--tokenizer", path.join(FIXTURES, "demo", "tokenizer.json"), "--max-new-tokens", String(maxTokens + 10));
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`prompt 0 has \\d+ tokens and maxNewTokens is ${maxTokens + 10}, but the model has positions for ${maxTokens} tokens\\. Lower maxNewTokens to \\d+`));
    expect(result.stdout).toBe("");
  });

  test("params of another shape", async () => {
    const other = compileForTest(GPT2, qv(4));
    const otherParams = path.join(other.dir, "params.safetensors");
    const generated = await runPeftc("generate", gpt2, "--prompt", "123", "--tokenizer", path.join(FIXTURES, "demo", "tokenizer.json"), "--params", otherParams);
    expect(generated.status).toBe(2);
    expect(generated.stderr).toMatch(/params\.safetensors: tensor "[^"]+lora_[AB]" has shape \[[0-9, ]+\], but the artifact folder's is \[[0-9, ]+\]\. The file was written for another artifact folder/);
    const data = writeJsonl([{ input_ids: [1, 2, 3] }]);
    const evaluated = await runPeftc("eval", gpt2, "--data", data, "--params", otherParams);
    expect(evaluated.status).toBe(2);
    expect(evaluated.stderr).toContain("was written for another artifact folder");

    const out = makeTempDir();
    expect((await runPeftc("train", other.dir, "--data", data, "--steps", "1", "--batch-size", "1", "--out", out, "--no-progress")).status).toBe(0);
    const resumed = await runPeftc("train", gpt2, "--data", data, "--steps", "2", "--resume", path.join(out, "checkpoint-1.safetensors"), "--out", makeTempDir());
    expect(resumed.status).toBe(2);
    expect(resumed.stderr).toContain("was written for another artifact folder");
  });

  test("generate: missing params file", async () => {
    const missing = path.join(makeTempDir(), "missing.safetensors");
    const result = await runPeftc("generate", gpt2, "--prompt", "123", "--tokenizer", path.join(FIXTURES, "demo", "tokenizer.json"), "--params", missing);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`params file ${missing} not found`);
  });
});

describe("Generator", () => {
  test("bad prompt ids, released generator", async () => {
    const compiled = compileForTest(LLAMA, qv(2));
    const generator = await Generator.open(compiled.dir, { tokenizer: null });
    await expect(generator.generate([[1, 512]], { maxNewTokens: 1 })).rejects.toThrow("prompt 0 has token id 512 at position 1, but the model's vocabulary has 512 tokens (0..511).");
    await generator.release();
    await expect(generator.generate([[1, 2]], { maxNewTokens: 1 })).rejects.toThrow("the generator was released");
  });

  test("merged folder checks shapes", async () => {
    const compiled = compileForTest(LLAMA, defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 2, alpha: 4 })], inference: { mergeAdapters: true } }));
    const file = path.join(makeTempDir(), "wrong.safetensors");
    const name = compiled.manifest.parameters[0].name;
    writeSafetensors(file, new Map([[name, Tensor.fromArray(name, DataType.FLOAT, [3, 3], new Float32Array(9))]]));
    await expect(Generator.open(compiled.dir, { tokenizer: null, params: file })).rejects.toThrow(`tensor "${name}" has shape [3, 3]`);
  });
});
