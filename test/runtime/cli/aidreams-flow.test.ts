import * as fs from "node:fs";
import * as path from "node:path";
import { CORPUS_DIR, hasCorpus } from "../../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { runPeftc } from "../../helpers/cli";

afterAll(removeTempDirs);

const ROOT = path.resolve(__dirname, "../../..");
const MODEL_DIR = path.join(CORPUS_DIR, "aidreams260K");

const run = runPeftc;

/** Writes rows in a style the base model never saw: short robot weather reports, one per line. */
function reports(count: number, offset: number): string {
  const colors = ["purple", "silver", "amber", "green", "cobalt", "scarlet"];
  const things = ["rain", "snow", "fog", "wind", "hail", "sun"];
  return Array.from({ length: count }, (_, i) => {
    const k = i + offset;
    return JSON.stringify({ text: `Robot report ${k % 7}: ${colors[k % colors.length]} ${things[(k * 5) % things.length]} over the quiet server farm.` });
  }).join("\n");
}

function evalLoss(stdout: string): number {
  const match = /loss[^0-9]*([0-9.]+)/i.exec(stdout);
  if (!match) throw new Error(`no loss in: ${stdout}`);
  return Number(match[1]);
}

(hasCorpus ? describe : describe.skip)("compile, generate and train on aidreams260K", () => {
  test("the whole flow from the command line", async () => {
    const work = makeTempDir();
    const out = path.join(work, "artifacts");
    const tokenizer = path.join(MODEL_DIR, "tokenizer.json");
    const compiled = await run("compile", path.join(MODEL_DIR, "model.onnx"), "--spec", path.join(ROOT, "specs", "lora-attention-qv.ts"), "--out", out);
    expect(compiled.stderr).toBe("");
    expect(compiled.status).toBe(0);

    // Before training, B is zero, so the cached graph reproduces PyTorch's greedy text.
    const reference = (JSON.parse(fs.readFileSync(path.join(MODEL_DIR, "reference", "generation.json"), "utf8")) as { cases: { prompt: string | null; text: string }[] }).cases.find((entry) => entry.prompt === "Echoes of vectors")!;
    const generated = await run("generate", out, "--tokenizer", tokenizer, "--prompt", "Echoes of vectors", "--max-new-tokens", "100");
    expect(generated.status).toBe(0);
    expect(generated.stdout.trim()).toBe(reference.text);

    const train = path.join(work, "train.jsonl");
    const heldOut = path.join(work, "held-out.jsonl");
    fs.writeFileSync(train, reports(48, 0) + "\n");
    fs.writeFileSync(heldOut, reports(12, 100) + "\n");
    const before = await run("eval", out, "--data", heldOut, "--tokenizer", tokenizer);
    expect(before.status).toBe(0);
    const trained = await run("train", out, "--data", train, "--tokenizer", tokenizer, "--steps", "30", "--batch-size", "8", "--lr", "1e-2", "--no-progress", "--out", path.join(work, "run"));
    expect(trained.stderr).not.toMatch(/error/i);
    expect(trained.status).toBe(0);
    const after = await run("eval", out, "--data", heldOut, "--tokenizer", tokenizer, "--params", path.join(work, "run", "params.safetensors"));
    expect(after.status).toBe(0);
    // Measured: 5.27 before and 0.58 after 30 steps (Node 20, onnxruntime-node 1.31 CPU); the test requires half.
    expect(evalLoss(after.stdout)).toBeLessThan(evalLoss(before.stdout) / 2);
  });
});
