/**
 * `peftc demo`: compiles a LoRA spec against a small pretrained decoder,
 * fine-tunes it on a task the base model cannot do, and measures the
 * greedy exact-match accuracy of the base and the adapted model on
 * held-out examples. Everything it needs ships with peftc, so it runs
 * offline and takes no arguments.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PeftcError } from "../compiler/errors";
import { DEMO_MAX_DIGITS, type DemoExample, type DemoTaskName, demoJsonl, makeDemoExamples } from "./demo-tasks";
import { Generator } from "./generator";

/** Defaults of `peftc demo`. With them `node bin/peftc.js demo` took 6.3 s on 2 CPU cores, reaching 100% from 1.5%. */
export const DEMO_DEFAULTS = { steps: 500, trainExamples: 4000, evalExamples: 200, batchSize: 32, seed: 0, task: "reverse" as DemoTaskName };

/** Seeds of the generated data sets, different so that no held-out example is drawn from the training stream. */
const TRAIN_DATA_SEED = 101;
const EVAL_DATA_SEED = 202;

export interface DemoOptions {
  /** Optimizer updates of the fine-tuning run (default DEMO_DEFAULTS.steps). */
  steps?: number;
  /** Generated training examples (default DEMO_DEFAULTS.trainExamples). */
  trainExamples?: number;
  /** Generated held-out examples that both accuracies are measured on (default DEMO_DEFAULTS.evalExamples). */
  evalExamples?: number;
  /** Task the LoRA adapter learns (default "reverse"; the base model was pretrained on "copy"). */
  task?: DemoTaskName;
  /** Folder that keeps the artifacts, data and trained parameters. Without it, the demo works in a temporary folder and deletes it. */
  outDir?: string;
  /** Folder with base.onnx, tokenizer.json and tokenizer_config.json (default: fixtures/demo of the peftc package). */
  fixtureDir?: string;
  /** The LoRA spec (default: specs/demo-lora.ts of the peftc package). */
  specFile?: string;
  /** Receives progress lines. */
  log?: (line: string) => void;
}

/** One held-out example and the model's greedy completion. */
export interface DemoSample {
  prompt: string;
  expected: string;
  generated: string;
  correct: boolean;
}

/** Exact-match accuracy over the held-out set, with every generation. */
export interface DemoAccuracy {
  /** Share of examples whose completion, up to the end-of-sequence token, equals the expected one, in [0, 1]. */
  accuracy: number;
  samples: DemoSample[];
}

export interface DemoResult {
  /** PEFT's summary line of the compiled spec (`trainable params: N || all params: M || trainable%: P`). */
  summary: string;
  task: DemoTaskName;
  steps: number;
  base: DemoAccuracy;
  adapted: DemoAccuracy;
  /** Loss of the first and the last update. */
  firstLoss: number;
  lastLoss: number;
  trainSeconds: number;
  /** The folder that was kept, or null when the demo used a temporary one. */
  outDir: string | null;
}

/** Returns the nearest folder at or above `start` that contains `relative`, so the same code finds package files from runtime/ and from dist/runtime/. */
function findUpwards(start: string, relative: string): string {
  let dir = start;
  for (;;) {
    const candidate = path.join(dir, relative);
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new PeftcError("E_FILE_NOT_FOUND", `${relative} not found in any folder above ${start}. Reinstall peftc, or pass its location explicitly.`, { file: relative });
    dir = parent;
  }
}

/**
 * Generates greedy completions for `examples` in batches and compares them
 * with the expected completions. A completion counts only when it matches
 * exactly and ends with the end-of-sequence token.
 */
export async function measureDemoAccuracy(generator: Generator, examples: readonly DemoExample[], params: string, batchSize = 100): Promise<DemoAccuracy> {
  const samples: DemoSample[] = [];
  for (let start = 0; start < examples.length; start += batchSize) {
    const batch = examples.slice(start, start + batchSize);
    const generations = await generator.generate(
      batch.map((example) => example.prompt),
      { maxNewTokens: DEMO_MAX_DIGITS + 1, params },
    );
    generations.forEach((generation, index) => {
      const example = batch[index];
      const generated = generation.text ?? "";
      samples.push({ prompt: example.prompt, expected: example.completion, generated, correct: generation.finishReason === "eos" && generated === example.completion });
    });
  }
  const correct = samples.filter((sample) => sample.correct).length;
  return { accuracy: samples.length === 0 ? 0 : correct / samples.length, samples };
}

/** Runs the demo: compile, measure the base model, fine-tune, measure the adapted model. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const log = options.log ?? (() => {});
  const task = options.task ?? DEMO_DEFAULTS.task;
  const steps = options.steps ?? DEMO_DEFAULTS.steps;
  const fixtureDir = options.fixtureDir ?? path.dirname(findUpwards(__dirname, path.join("fixtures", "demo", "base.onnx")));
  const specFile = options.specFile ?? findUpwards(__dirname, path.join("specs", "demo-lora.ts"));
  const workDir = options.outDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "peftc-demo-"));
  fs.mkdirSync(workDir, { recursive: true });

  // The compiler and trainer load here, as the CLI loads them only for the commands that need them.
  const { loadSpec } = await import("../compiler/dsl/load");
  const { compileArtifacts } = await import("../compiler/emit/compile");
  const { train } = await import("./trainer/trainer");

  let generator: Generator | null = null;
  try {
    log(`compiling ${specFile} against ${path.join(fixtureDir, "base.onnx")}`);
    const loaded = loadSpec(specFile);
    const artifactDir = path.join(workDir, "artifacts");
    const { manifest } = compileArtifacts({ modelFile: path.join(fixtureDir, "base.onnx"), outDir: artifactDir, spec: loaded.spec, specFile: loaded.file, relocate: (error) => loaded.relocate(error) });

    const trainFile = path.join(workDir, `${task}-train.jsonl`);
    fs.writeFileSync(trainFile, demoJsonl(makeDemoExamples(task, options.trainExamples ?? DEMO_DEFAULTS.trainExamples, TRAIN_DATA_SEED)));
    const heldOut = makeDemoExamples(task, options.evalExamples ?? DEMO_DEFAULTS.evalExamples, EVAL_DATA_SEED);

    // The initial LoRA B matrices are zero, so the initial parameters give exactly the base model.
    generator = await Generator.open(artifactDir, { tokenizer: path.join(fixtureDir, "tokenizer.json") });
    log(`measuring the base model on ${heldOut.length} held-out examples`);
    const base = await measureDemoAccuracy(generator, heldOut, path.join(artifactDir, "params.safetensors"));

    log(`fine-tuning for ${steps} steps`);
    const started = process.hrtime.bigint();
    const trained = await train({ artifactDir, data: trainFile, steps, batchSize: DEMO_DEFAULTS.batchSize, schedule: "cosine", warmup: Math.min(20, Math.floor(steps / 10)), seed: DEMO_DEFAULTS.seed, outDir: path.join(workDir, "train"), progress: false });
    const trainSeconds = Number(process.hrtime.bigint() - started) / 1e9;

    log("measuring the adapted model");
    const adapted = await measureDemoAccuracy(generator, heldOut, trained.paramsFile);
    return {
      summary: manifest.summary.line,
      task,
      steps,
      base,
      adapted,
      firstLoss: trained.losses[0],
      lastLoss: trained.losses[trained.losses.length - 1],
      trainSeconds,
      outDir: options.outDir ?? null,
    };
  } finally {
    await generator?.release();
    if (options.outDir === undefined) fs.rmSync(workDir, { recursive: true, force: true });
  }
}
