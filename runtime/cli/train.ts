import * as path from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { RuntimeInputError } from "../errors";
import type { TextEncoder } from "../data/dataset";
import type { CliIo } from "./main";
import { type DeviceRequest, describeDevice } from "../session";

interface TrainCommandOptions {
  data: string;
  evalData?: string;
  steps?: number;
  epochs?: number;
  batchSize?: number;
  maxLength?: number;
  pack?: boolean;
  lr?: number;
  schedule?: "constant" | "linear" | "cosine";
  warmup?: number;
  gradAccum?: number;
  evalEvery?: number;
  checkpointEvery?: number;
  out?: string;
  resume?: string;
  seed?: number;
  device: DeviceRequest;
  tokenizer?: string;
  progress: boolean;
}

interface EvalCommandOptions {
  data: string;
  params?: string;
  batchSize?: number;
  maxLength?: number;
  pack?: boolean;
  tokenizer?: string;
  device: DeviceRequest;
}

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < 1) {
    throw new InvalidArgumentError(`invalid value ${JSON.stringify(value)}: expected a positive integer.`);
  }
  return parsed;
}

function nonNegativeInteger(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed)) {
    throw new InvalidArgumentError(`invalid value ${JSON.stringify(value)}: expected a non-negative integer.`);
  }
  return parsed;
}

function positiveNumber(value: string): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed <= 0) {
    throw new InvalidArgumentError(`invalid value ${JSON.stringify(value)}: expected a positive number.`);
  }
  return parsed;
}

function nonNegativeNumber(value: string): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed < 0) {
    throw new InvalidArgumentError(`invalid value ${JSON.stringify(value)}: expected a non-negative number.`);
  }
  return parsed;
}

function deviceOption(webgpuNote: string): Option {
  return new Option("--device <device>", `execution provider; auto tries cuda, then webgpu where a GPU exists, then cpu, and prints which it took (${webgpuNote})`)
    .choices(["cpu", "webgpu", "cuda", "auto"])
    .default("cpu");
}

async function loadEncoder(file: string | undefined): Promise<TextEncoder | undefined> {
  if (file === undefined) return undefined;
  const { Tokenizer } = await import("../tokenizer");
  return Tokenizer.load(file);
}

/** Adds `peftc train ARTIFACT_DIR --data FILE`. */
export function registerTrain(program: Command, io: CliIo): void {
  program
    .command("train")
    .description(
      "Train the parameters of an artifact folder on a JSONL dataset. Writes metrics.jsonl, checkpoint-<step>.safetensors (parameters, optimizer state and position), " +
        "params.safetensors (the trained tensors, for export-adapter --params and eval --params) and loss-curve.svg into --out. " +
        "Rows are {\"input_ids\", \"labels\"}, {\"prompt\", \"completion\"} (loss on the completion only) or {\"text\"} (needs --tokenizer); " +
        "for sequence classification, {\"input_ids\", \"label\"} or {\"text\", \"label\"} with one class id per row. " +
        "Model inputs beyond input_ids and attention_mask are filled as for a batch without a KV cache: token_type_ids with zeros, position_ids from attention_mask, past_key_values.* empty.",
    )
    .argument("<artifact-dir>", "artifact folder written by peftc compile (needs train.onnx, and grad.onnx and apply.onnx for --grad-accum above 1)")
    .requiredOption("--data <file>", "training set, one JSON object per line")
    .option("--eval-data <file>", "held-out set evaluated with eval.onnx every --eval-every steps and at the end")
    .option("--steps <n>", "optimizer updates in the whole run, counting those before --resume (default: one epoch)", positiveInteger)
    .option("--epochs <n>", "passes over the training rows, rounded up to whole updates; exclusive with --steps (may be fractional)", positiveNumber)
    .option("--batch-size <n>", "rows per micro-batch (default: 8, or the checkpoint's)", positiveInteger)
    .option("--max-length <n>", "tokens per row; longer rows are truncated, or split with --pack (default: 512 or the model's positions if fewer, or the checkpoint's)", positiveInteger)
    .option("--pack", "join the rows and cut them into rows of exactly --max-length tokens, so batches carry no padding")
    .option("--lr <x>", "peak learning rate (default: the lr of the spec's optimizer)", nonNegativeNumber)
    .addOption(new Option("--schedule <name>", "learning-rate schedule after warmup (default: constant)").choices(["constant", "linear", "cosine"]))
    .option("--warmup <n>", "updates over which the learning rate rises linearly to --lr (default: 0)", nonNegativeInteger)
    .option("--grad-accum <n>", "micro-batches per update, combined as one batch of batch-size × n rows (default: 1)", positiveInteger)
    .option("--eval-every <n>", "evaluate on --eval-data every n updates (default: only at the end)", positiveInteger)
    .option("--checkpoint-every <n>", "write a checkpoint every n updates (default: only at the end)", positiveInteger)
    .option("--out <dir>", "output folder (default: <artifact-dir>/train)")
    .option("--resume <checkpoint>", "continue from a checkpoint-<step>.safetensors; unset data options are taken from it")
    .option("--seed <n>", "seed of the row shuffling (default: 0, or the checkpoint's)", nonNegativeInteger)
    .option("--tokenizer <file>", "tokenizer.json for rows given as text")
    .addOption(deviceOption("on WebGPU the parameters and optimizer state stay in GPU buffers between steps"))
    .option("--no-progress", "hide the progress bar (it is shown only on a terminal)")
    .action(async (artifactDir: string, options: TrainCommandOptions) => {
      if (options.steps !== undefined && options.epochs !== undefined) {
        throw new RuntimeInputError("E_TRAINING", "invalid options: give either --steps or --epochs, not both.");
      }
      const { train } = await import("../trainer/trainer");
      const result = await train({
        artifactDir,
        data: options.data,
        evalData: options.evalData,
        steps: options.steps,
        epochs: options.epochs,
        batchSize: options.batchSize,
        maxLength: options.maxLength,
        pack: options.pack,
        lr: options.lr,
        schedule: options.schedule,
        warmup: options.warmup,
        gradAccum: options.gradAccum,
        evalEvery: options.evalEvery,
        checkpointEvery: options.checkpointEvery,
        outDir: options.out ?? path.join(artifactDir, "train"),
        resume: options.resume,
        seed: options.seed,
        device: options.device,
        encoder: await loadEncoder(options.tokenizer),
        progress: options.progress,
        log: (line) => io.stderr(`${line}\n`),
      });
      const last = result.losses[result.losses.length - 1];
      io.stdout(`trained to step ${result.finalStep}${last === undefined ? "" : `, last loss ${last.toFixed(4)}`}\n`);
      if (result.lastEval) io.stdout(`eval loss ${result.lastEval.loss.toFixed(4)}, perplexity ${result.lastEval.perplexity.toFixed(3)}\n`);
      const written = [result.paramsFile, result.metricsFile, result.lossCurveFile, ...result.checkpoints];
      io.stdout(`wrote ${written.join(", ")}\n`);
    });
}

/** Adds `peftc eval ARTIFACT_DIR --data FILE`. */
export function registerEval(program: Command, io: CliIo): void {
  program
    .command("eval")
    .description("Compute the loss and perplexity of an artifact folder's parameters on a JSONL dataset with eval.onnx (no dropout), averaged over every counted label.")
    .argument("<artifact-dir>", "artifact folder written by peftc compile")
    .requiredOption("--data <file>", "dataset, one JSON object per line, in the forms peftc train takes")
    .option("--params <file>", "safetensors file with the trained tensors, such as params.safetensors or a checkpoint from peftc train (default: <artifact-dir>/params.safetensors)")
    .option("--batch-size <n>", "rows per batch (default: 8)", positiveInteger)
    .option("--max-length <n>", "tokens per row; longer rows are truncated, or split with --pack (default: 512 or the model's positions if fewer)", positiveInteger)
    .option("--pack", "join the rows and cut them into rows of exactly --max-length tokens")
    .option("--tokenizer <file>", "tokenizer.json for rows given as text")
    .addOption(deviceOption("on WebGPU only the loss and counts come back to the host"))
    .action(async (artifactDir: string, options: EvalCommandOptions) => {
      const { ArtifactFolder } = await import("../trainer/artifacts");
      const { evaluate } = await import("../trainer/evaluate");
      const { buildRows } = await import("../data/batches");
      const { readJsonlDataset } = await import("../data/dataset");
      const { TRAIN_DEFAULTS } = await import("../trainer/trainer");
      const artifacts = new ArtifactFolder(artifactDir, options.device);
      try {
        const rows = buildRows(readJsonlDataset(options.data, await loadEncoder(options.tokenizer)), options.maxLength ?? artifacts.defaultMaxLength(TRAIN_DEFAULTS.maxLength), options.pack ?? false);
        const result = await evaluate(artifacts, artifacts.readParams(options.params), rows, options.batchSize ?? TRAIN_DEFAULTS.batchSize);
        io.stderr(`${describeDevice(artifacts.placement!)}\n`);
        io.stdout(`loss ${result.loss.toFixed(6)}\nperplexity ${result.perplexity.toFixed(6)}\ncounted tokens ${result.countedTokens}\n`);
      } finally {
        await artifacts.release();
      }
    });
}
