import * as path from "node:path";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import { compileForTest, readJson } from "../../helpers/artifacts";
import { CORPUS_DIR, describeCorpus } from "../../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { runPeftc } from "../../helpers/cli";

afterAll(removeTempDirs);

const run = runPeftc;

interface GenerationCase {
  prompt: string | null;
  text: string;
  new_ids: number[];
}

describe("peftc generate arguments", () => {
  test("--help lists the options with defaults", async () => {
    const { status, stdout } = await run("generate", "--help");
    expect(status).toBe(0);
    for (const option of ["--prompt <text>", "--tokenizer <file>", "--max-new-tokens <n>", "--temperature <t>", "--top-k <k>", "--top-p <p>", "--repetition-penalty <r>", "--seed <s>", "--stop <text>", "--params <file>", "--device <device>", "--stream"]) {
      expect(stdout).toContain(option);
    }
    expect(stdout).toContain("(default: 64)");
    expect(stdout.replace(/\s+/g, " ")).toContain('(choices: "cpu", "webgpu", "cuda", "auto", default: "cpu")');
  });

  test.each([
    [["--max-new-tokens", "-1"], "--max-new-tokens"],
    [["--max-new-tokens", "2.5"], "--max-new-tokens"],
    [["--temperature", "hot"], "--temperature"],
    [["--top-k", "-3"], "--top-k"],
    [["--top-p", "0"], "--top-p"],
    [["--top-p", "1.5"], "--top-p"],
    [["--repetition-penalty", "0"], "--repetition-penalty"],
    [["--seed", "-1"], "--seed"],
    [["--device", "tpu"], "--device"],
  ])("%j exits with status 2", async (args, option) => {
    const { status, stderr } = await run("generate", makeTempDir(), "--prompt", "hi", ...args);
    expect(status).toBe(2);
    expect(stderr).toContain(option);
  });

  test("missing --prompt exits with status 2", async () => {
    const { status, stderr } = await run("generate", makeTempDir());
    expect(status).toBe(2);
    expect(stderr).toContain("--prompt");
  });

  test("missing artifact folder exits with status 2", async () => {
    const { status, stderr } = await run("generate", path.join(makeTempDir(), "missing"), "--prompt", "hi");
    expect(status).toBe(2);
    expect(stderr).toMatch(/^peftc: artifact folder .* not found/);
  });
});

describeCorpus("peftc generate on aidreams260K", () => {
  const modelDir = path.join(CORPUS_DIR, "aidreams260K");
  const tokenizer = path.join(modelDir, "tokenizer.json");
  const reference = readJson<{ cases: GenerationCase[] }>(path.join(modelDir, "reference", "generation.json")).cases;
  const spec = defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8 })] });
  let dir = "";

  beforeAll(() => {
    dir = compileForTest(path.join(modelDir, "model_with_past.onnx"), spec).dir;
  });

  test("prints the reference texts for a batch", async () => {
    const prompts = reference.filter((entry) => entry.prompt !== null);
    const { status, stdout, stderr } = await run("generate", dir, "--tokenizer", tokenizer, "--max-new-tokens", "100", ...prompts.flatMap((entry) => ["--prompt", entry.prompt!]));
    expect(stderr).toBe("device: cpu\n");
    expect(status).toBe(0);
    expect(stdout).toBe(prompts.map((entry) => `${entry.text}\n`).join(""));
  });

  test("--stream prints the same text", async () => {
    const prompts = reference.map((entry) => entry.prompt ?? "");
    const { status, stdout } = await run("generate", dir, "--tokenizer", tokenizer, "--max-new-tokens", "100", "--stream", ...prompts.flatMap((prompt) => ["--prompt", prompt]));
    expect(status).toBe(0);
    expect(stdout).toBe(reference.map((entry) => `${entry.text}\n`).join(""));
  });

  test("--stop cuts the text", async () => {
    const entry = reference[2];
    const { status, stdout } = await run("generate", dir, "--tokenizer", tokenizer, "--prompt", entry.prompt!, "--stop", "tapestry", "--max-new-tokens", "100");
    expect(status).toBe(0);
    expect(stdout).toBe(`${entry.text.slice(0, entry.text.indexOf("tapestry"))}\n`);
  });

  test("--device auto falls back and says so on stderr", async () => {
    const { status, stdout, stderr } = await run("generate", dir, "--tokenizer", tokenizer, "--prompt", reference[1].prompt!, "--max-new-tokens", "5", "--device", "auto");
    expect(status).toBe(0);
    expect(stderr).toMatch(/^device: \w+/);
    expect(stdout.startsWith(reference[1].prompt!)).toBe(true);
  });

  test("missing tokenizer exits with status 2", async () => {
    const { status, stderr } = await run("generate", dir, "--prompt", "hi");
    expect(status).toBe(2);
    expect(stderr).toContain("--tokenizer");
  });

  test("missing params file exits with status 2", async () => {
    const { status, stderr } = await run("generate", dir, "--tokenizer", tokenizer, "--prompt", "hi", "--params", path.join(makeTempDir(), "none.safetensors"));
    expect(status).toBe(2);
    expect(stderr).toContain("none.safetensors not found");
  });
});
