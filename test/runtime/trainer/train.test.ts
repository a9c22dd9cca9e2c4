import * as fs from "node:fs";
import * as path from "node:path";
import { readSafetensors } from "../../../compiler/emit/safetensors";
import { collate } from "../../../runtime/data/batches";
import { ArtifactFolder } from "../../../runtime/trainer/artifacts";
import { isFiniteTensor, readCheckpoint } from "../../../runtime/trainer/checkpoint";
import { accumulatedStep, trainStep } from "../../../runtime/trainer/step";
import { train } from "../../../runtime/trainer/trainer";
import { compileTinyLlama, patternRows, writeJsonl } from "../../helpers/training";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

let plain: string;
let withDropout: string;
let data: string;

beforeAll(() => {
  plain = compileTinyLlama(0);
  withDropout = compileTinyLlama(0.1);
  data = writeJsonl(patternRows(16, 12));
});

const quiet = { progress: false, seed: 5 };

describe("train", () => {
  test("loss falls over 30 steps", async () => {
    const out = makeTempDir();
    const evalData = writeJsonl(patternRows(4, 12, 2), "eval.jsonl");
    const result = await train({ ...quiet, artifactDir: plain, data, evalData, evalEvery: 10, steps: 30, batchSize: 4, maxLength: 12, lr: 1e-2, outDir: out });
    expect(result.losses).toHaveLength(30);
    expect(result.losses.every(Number.isFinite)).toBe(true);
    // The base model starts near ln(512) = 6.2; the repeating patterns are easy to fit.
    const first = result.losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const last = result.losses.slice(-3).reduce((a, b) => a + b) / 3;
    expect(last).toBeLessThan(first * 0.7);

    const lines = fs.readFileSync(result.metricsFile, "utf8").trim().split("\n").map((line) => JSON.parse(line));
    expect(lines).toHaveLength(30);
    expect(lines.map((line) => line.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    for (const key of ["loss", "lr", "grad_norm", "tokens_per_s", "counted_tokens", "epoch"]) expect(typeof lines[0][key]).toBe("number");
    expect(lines[0].counted_tokens).toBe(4 * 11);
    expect(lines.filter((line) => line.eval_loss !== undefined).map((line) => line.step)).toEqual([10, 20, 30]);
    expect(lines[29].eval_ppl).toBeCloseTo(Math.exp(lines[29].eval_loss), 6);
    expect(result.lastEval!.loss).toBe(lines[29].eval_loss);

    expect(fs.readFileSync(result.lossCurveFile, "utf8")).toMatch(/^<svg[^>]*>[\s\S]*<path d="M[\s\S]*<\/svg>\n$/);
    expect([...readSafetensors(result.paramsFile).tensors.keys()].sort()).toEqual(new ArtifactFolder(plain).paramNames.sort());
    expect(result.checkpoints).toEqual([path.join(out, "checkpoint-30.safetensors")]);
  });

  test("gradient accumulation matches one combined batch", async () => {
    const artifacts = new ArtifactFolder(plain);
    try {
      const rows = patternRows(4, 10, 3).map((row, i) => ({ inputIds: row.input_ids, labels: row.input_ids, source: `row ${i}` }));
      const inputs = { params: artifacts.readParams(), state: await artifacts.zeroState("train"), lr: 1e-2, step: 1 };
      const combined = await trainStep(artifacts, collate(rows), inputs);
      const accumulated = await accumulatedStep(artifacts, [collate(rows.slice(0, 2)), collate(rows.slice(2))], inputs);
      expect(accumulated.countedTokens).toBe(combined.countedTokens);
      expect(Math.abs(accumulated.loss - combined.loss)).toBeLessThan(1e-5);
      expect(Math.abs(accumulated.gradNorm - combined.gradNorm)).toBeLessThan(1e-5);
      let worst = 0;
      for (const name of artifacts.paramNames) {
        const a = combined.params[name].data as Float32Array;
        const b = accumulated.params[name].data as Float32Array;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      }
      expect(worst).toBeLessThan(1e-5);
    } finally {
      await artifacts.release();
    }
  });

  test("accumulated runs match combined-batch runs", async () => {
    const combined = await train({ ...quiet, artifactDir: plain, data, steps: 4, batchSize: 4, maxLength: 12, outDir: makeTempDir() });
    const accumulated = await train({ ...quiet, artifactDir: plain, data, steps: 4, batchSize: 2, gradAccum: 2, maxLength: 12, outDir: makeTempDir() });
    combined.losses.forEach((loss, i) => expect(Math.abs(accumulated.losses[i] - loss)).toBeLessThan(1e-5));
  });

  test.each([
    ["without dropout", () => plain, 1],
    ["with dropout", () => withDropout, 1],
    ["with dropout and accumulation", () => withDropout, 2],
  ])("resume gives identical losses %s", async (_name, artifactDir, gradAccum) => {
    const settings = { ...quiet, artifactDir: artifactDir(), data, batchSize: 2, gradAccum, maxLength: 12, schedule: "cosine" as const, warmup: 2 };
    const full = await train({ ...settings, steps: 10, outDir: makeTempDir() });
    const out = makeTempDir();
    const interrupted = await train({ ...settings, steps: 10, checkpointEvery: 5, outDir: out });
    expect(interrupted.losses).toEqual(full.losses);
    const resumed = await train({ ...settings, steps: 10, resume: path.join(out, "checkpoint-5.safetensors"), outDir: out });
    expect(resumed.losses).toEqual(full.losses.slice(5));
    const lines = fs.readFileSync(resumed.metricsFile, "utf8").trim().split("\n");
    expect(lines).toHaveLength(10);
  });

  test("resume from a 5-step run continues as one run", async () => {
    const settings = { ...quiet, artifactDir: withDropout, data, batchSize: 2, maxLength: 12 };
    const full = await train({ ...settings, steps: 10, outDir: makeTempDir() });
    const out = makeTempDir();
    const half = await train({ ...settings, steps: 5, outDir: out });
    const resumed = await train({ ...settings, steps: 10, resume: half.checkpoints[0], outDir: out });
    expect([...half.losses, ...resumed.losses]).toEqual(full.losses);
  });

  test("resume rejects other data settings", async () => {
    const out = makeTempDir();
    const first = await train({ ...quiet, artifactDir: plain, data, steps: 2, batchSize: 2, maxLength: 12, outDir: out });
    await expect(train({ ...quiet, artifactDir: plain, data, steps: 4, batchSize: 4, maxLength: 12, resume: first.checkpoints[0], outDir: out })).rejects.toThrow("batch size 4 (checkpoint: 2)");
  });

  test("non-finite loss stops and keeps the last checkpoint", async () => {
    const out = makeTempDir();
    const run = train({ ...quiet, artifactDir: plain, data, steps: 10, batchSize: 2, maxLength: 12, checkpointEvery: 3, outDir: out, learningRateOverride: (step, lr) => (step === 4 ? Number.NaN : lr) });
    await expect(run).rejects.toMatchObject({ code: "E_TRAINING" });
    await expect(run).rejects.toThrow(/step 5: the (loss|gradient norm) is NaN/);
    await expect(run).rejects.toThrow(`parameters gave a finite loss is ${path.join(out, "checkpoint-3.safetensors")}.`);
    expect(fs.readdirSync(out).sort()).toEqual(["checkpoint-3.safetensors", "metrics.jsonl"]);
    const artifacts = new ArtifactFolder(plain);
    const checkpoint = readCheckpoint(path.join(out, "checkpoint-3.safetensors"), artifacts.paramNames, artifacts.stateNames);
    expect(checkpoint.position.step).toBe(3);
    expect(checkpoint.position.position).toBe(6);
    expect(Object.values(checkpoint.params).every(isFiniteTensor)).toBe(true);
    expect(fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n")).toHaveLength(4);
  });

  test("huge learning rate stops training", async () => {
    const out = makeTempDir();
    const run = train({ ...quiet, artifactDir: plain, data, steps: 20, batchSize: 2, maxLength: 12, lr: 1e30, checkpointEvery: 1, outDir: out });
    await expect(run).rejects.toMatchObject({ code: "E_TRAINING" });
    // The first update moves the weights by about lr, so the second loss overflows.
    await expect(run).rejects.toThrow("training stopped at step 2: the loss is NaN");
    await expect(run).rejects.toThrow(`No checkpoint has parameters that gave a finite loss. ${path.join(out, "checkpoint-1.safetensors")} contains the parameters of the failed update.`);
    expect(fs.existsSync(path.join(out, "params.safetensors"))).toBe(false);
  });
});
