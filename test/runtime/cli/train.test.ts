import * as fs from "node:fs";
import * as path from "node:path";
import { compileTinyLlama, patternRows, writeJsonl } from "../../helpers/training";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { runPeftc } from "../../helpers/cli";

afterAll(removeTempDirs);

const run = runPeftc;

let artifacts: string;
let data: string;
let evalData: string;

beforeAll(() => {
  artifacts = compileTinyLlama();
  data = writeJsonl(patternRows(8, 10));
  evalData = writeJsonl(patternRows(3, 10, 9), "eval.jsonl");
});

describe("peftc train and eval", () => {
  test("train writes params, metrics and checkpoints", async () => {
    const out = path.join(makeTempDir(), "run");
    const trained = await run("train", artifacts, "--data", data, "--eval-data", evalData, "--steps", "6", "--batch-size", "2", "--max-length", "10", "--lr", "0.01", "--schedule", "linear", "--warmup", "2", "--checkpoint-every", "3", "--out", out, "--seed", "1");
    expect(trained.stderr).not.toContain("internal error");
    expect(trained.status).toBe(0);
    expect(trained.stdout).toMatch(/^trained to step 6, last loss \d+\.\d{4}\neval loss \d+\.\d{4}, perplexity \d+\.\d{3}\n/);
    const written = ["params.safetensors", "metrics.jsonl", "loss-curve.svg", "checkpoint-3.safetensors", "checkpoint-6.safetensors"].map((file) => path.join(out, file));
    expect(trained.stdout).toContain(`\nwrote ${written.join(", ")}\n`);
    expect(`${trained.stdout}${trained.stderr}`.match(/^wrote /gm)).toHaveLength(1);
    expect(fs.readdirSync(out).sort()).toEqual(["checkpoint-3.safetensors", "checkpoint-6.safetensors", "loss-curve.svg", "metrics.jsonl", "params.safetensors"]);
    const lines = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line));
    expect(lines.map((line) => line.lr)).toEqual([0.005, 0.01, 0.01, 0.0075, 0.005, 0.0025].map((lr) => expect.closeTo(lr, 6)));

    const evaluated = await run("eval", artifacts, "--data", evalData, "--params", path.join(out, "params.safetensors"), "--max-length", "10");
    expect(evaluated.status).toBe(0);
    const loss = Number(/^loss (\S+)$/m.exec(evaluated.stdout)![1]);
    const perplexity = Number(/^perplexity (\S+)$/m.exec(evaluated.stdout)![1]);
    expect(loss).toBeCloseTo(lines[5].eval_loss, 5);
    expect(perplexity).toBeCloseTo(Math.exp(loss), 3);

    const fromCheckpoint = await run("eval", artifacts, "--data", evalData, "--params", path.join(out, "checkpoint-6.safetensors"), "--max-length", "10");
    expect(fromCheckpoint.stdout).toBe(evaluated.stdout);

    const exported = await run("export-adapter", artifacts, "--params", path.join(out, "params.safetensors"), "--out", path.join(makeTempDir(), "adapter"));
    expect(exported.stderr).toBe("");
    expect(exported.status).toBe(0);
  });

  test("train resumes from a checkpoint", async () => {
    const out = path.join(makeTempDir(), "run");
    expect((await run("train", artifacts, "--data", data, "--steps", "4", "--batch-size", "2", "--max-length", "10", "--checkpoint-every", "2", "--out", out, "--no-progress")).status).toBe(0);
    const resumed = await run("train", artifacts, "--data", data, "--steps", "4", "--resume", path.join(out, "checkpoint-2.safetensors"), "--out", out);
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toContain("trained to step 4");
    expect(fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n")).toHaveLength(4);
  });

  test("train and eval read text rows with --tokenizer", async () => {
    const dir = makeTempDir();
    const tokenizer = path.join(dir, "tokenizer.json");
    const vocab = { "[UNK]": 0, the: 5, cat: 6, sat: 7, on: 8, mat: 9 };
    fs.writeFileSync(tokenizer, JSON.stringify({ version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: { type: "Whitespace" }, post_processor: null, decoder: null, model: { type: "WordLevel", vocab, unk_token: "[UNK]" } }));
    const rows = writeJsonl([{ text: "the cat sat on the mat" }, { prompt: "the cat", completion: " sat on the mat" }]);
    const out = path.join(dir, "run");
    const trained = await run("train", artifacts, "--data", rows, "--tokenizer", tokenizer, "--steps", "2", "--batch-size", "2", "--out", out);
    expect(trained.stderr).not.toContain("internal error");
    expect(trained.status).toBe(0);
    const lines = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line));
    // Six tokens give five shifted labels for the text row; the completion's four tokens are all counted, the prompt's two are not.
    expect(lines[0].counted_tokens).toBe(5 + 4);

    const evaluated = await run("eval", artifacts, "--data", rows, "--tokenizer", tokenizer);
    expect(evaluated.status).toBe(0);
    expect(evaluated.stdout).toContain("counted tokens 9");

    const withoutTokenizer = await run("eval", artifacts, "--data", rows);
    expect(withoutTokenizer.status).toBe(2);
    expect(withoutTokenizer.stderr).toContain(`${rows}:1: field "text" needs a tokenizer`);
  });

  test("eval scores initial params", async () => {
    const evaluated = await run("eval", artifacts, "--data", evalData);
    expect(evaluated.status).toBe(0);
    expect(evaluated.stdout).toMatch(/^loss \d+\.\d+\nperplexity \d+\.\d+\ncounted tokens 27\n$/);
  });

  test.each([
    [["--steps", "0"], "--steps"],
    [["--steps", "2", "--epochs", "1"], "either --steps or --epochs"],
    [["--schedule", "exponential"], "--schedule"],
    [["--lr", "fast"], "--lr"],
    [["--device", "tpu"], "--device"],
    [["--batch-size", "1.5"], "--batch-size"],
  ])("train rejects %j with status 2", async (extra, expected) => {
    const result = await run("train", artifacts, "--data", data, "--out", makeTempDir(), ...extra);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(expected);
  });

  test("train --device auto trains on the provider that loads and names it", async () => {
    const out = path.join(makeTempDir(), "auto");
    const result = await run("train", artifacts, "--data", data, "--steps", "2", "--batch-size", "2", "--max-length", "10", "--out", out, "--device", "auto");
    expect(result.status).toBe(0);
    expect(result.stderr).toMatch(/^device: (cpu|webgpu|cuda)\b/m);
    // On a machine without a GPU provider, the line gives the reason each was skipped.
    if (/^device: cpu/m.test(result.stderr)) expect(result.stderr).toContain("Skipped cuda:");
    expect(fs.existsSync(path.join(out, "checkpoint-2.safetensors"))).toBe(true);
  });

  test("train --device cuda fails in one line", async () => {
    const result = await run("train", artifacts, "--data", data, "--steps", "1", "--batch-size", "2", "--max-length", "10", "--out", makeTempDir(), "--device", "cuda");
    if (result.status === 0) return; // a machine with onnxruntime's CUDA provider installed
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("device cuda is unavailable");
    expect(result.stderr).toContain("ONNXRUNTIME_NODE_INSTALL=cuda12");
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("train names a bad dataset line", async () => {
    const bad = writeJsonl([{ input_ids: [1, 2, 3] }, { input_ids: "1 2 3" }]);
    const result = await run("train", artifacts, "--data", bad, "--out", makeTempDir());
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${bad}:2: field "input_ids" is a string`);
  });

  test("eval reports a missing artifact folder", async () => {
    const result = await run("eval", path.join(makeTempDir(), "none"), "--data", data);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("manifest.json not found");
  });

  test("help lists units and defaults", async () => {
    const help = await run("train", "--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("--grad-accum <n>");
    expect(help.stdout).toContain("(default: 8, or the checkpoint's)");
  });
});
