import * as fs from "node:fs";
import * as path from "node:path";
import type * as ort from "onnxruntime-node";
import { type Row, RowStream, buildRows, checkRows, collate } from "../data/batches";
import { type TextEncoder, readJsonlDataset } from "../data/dataset";
import { RuntimeInputError } from "../errors";
import { ArtifactFolder } from "./artifacts";
import { type DeviceRequest, describeDevice } from "../session";
import { releaseOutputs, releaseReplaced } from "./placement";
import { type TrainingPosition, readCheckpoint, writeCheckpoint, writeParams } from "./checkpoint";
import { type EvalResult, evaluate } from "./evaluate";
import { MetricsWriter, type StepMetrics, writeLossCurve } from "./metrics";
import { TrainingProgress } from "./progress";
import { type Schedule, type ScheduleName, learningRate } from "./schedule";
import { type StepOutcome, accumulatedStep, replayDropout, trainStep } from "./step";
import { checkParameterShapes } from "../param-shapes";

/** Defaults of `peftc train`, also used when a library caller leaves an option out. */
export const TRAIN_DEFAULTS = { batchSize: 8, maxLength: 512, gradAccum: 1, warmup: 0, seed: 0, schedule: "constant" as ScheduleName, epochs: 1 };

/** Settings of a training run. Data settings left undefined come from the checkpoint on resume, else from TRAIN_DEFAULTS. */
export interface TrainOptions {
  artifactDir: string;
  data: string;
  evalData?: string;
  /** Total updates of the run, counting those before a resume. Exclusive with `epochs`. */
  steps?: number;
  /** Passes over the training rows, rounded up to whole updates. */
  epochs?: number;
  /** Rows per micro-batch. */
  batchSize?: number;
  /** Max tokens per row. */
  maxLength?: number;
  pack?: boolean;
  /** Peak learning rate (default: the spec's optimizer lr). */
  lr?: number;
  schedule?: ScheduleName;
  warmup?: number;
  /** Micro-batches per update. Above 1, each update runs grad.onnx per micro-batch and apply.onnx once. */
  gradAccum?: number;
  evalEvery?: number;
  checkpointEvery?: number;
  outDir: string;
  /** Checkpoint file to continue from. */
  resume?: string;
  /** Execution device (default cpu); `auto` takes the first of cuda, webgpu and cpu that loads. */
  device?: DeviceRequest;
  seed?: number;
  /** Tokenizer for string fields of the datasets. */
  encoder?: TextEncoder;
  /** Replaces the schedule's rate of each step; tests use it to provoke a failing update. */
  learningRateOverride?: (step: number, scheduled: number) => number;
  /** Stream for the progress bar, which is shown only when it is a TTY (default: stderr). */
  progressStream?: NodeJS.WriteStream;
  progress?: boolean;
  /** Receives one-line notices: evaluation results, the device chosen and warnings. The files written are in the result. */
  log?: (line: string) => void;
}

/** Result of a finished run: its losses and the files it wrote. */
export interface TrainResult {
  /** Loss of every update this invocation ran, in order. */
  losses: number[];
  finalStep: number;
  outDir: string;
  paramsFile: string;
  metricsFile: string;
  lossCurveFile: string;
  checkpoints: string[];
  lastEval: EvalResult | null;
}

/** Resolved settings, after defaults and the checkpoint are applied. */
interface RunPlan {
  batchSize: number;
  gradAccum: number;
  maxLength: number;
  pack: boolean;
  seed: number;
  schedule: Schedule;
}

function positiveInteger(value: number | undefined, name: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
    throw new RuntimeInputError("E_TRAINING", `invalid ${name} ${value}: it must be a positive integer.`);
  }
}

/** Checks that a resumed run reads its data exactly as the run that wrote the checkpoint did. */
function checkResumable(file: string, saved: TrainingPosition, plan: RunPlan, rows: number): void {
  const mismatches: string[] = [];
  if (saved.seed !== plan.seed) mismatches.push(`seed ${plan.seed} (checkpoint: ${saved.seed})`);
  if (saved.batchSize !== plan.batchSize) mismatches.push(`batch size ${plan.batchSize} (checkpoint: ${saved.batchSize})`);
  if (saved.gradAccum !== plan.gradAccum) mismatches.push(`gradient accumulation ${plan.gradAccum} (checkpoint: ${saved.gradAccum})`);
  if (saved.maxLength !== plan.maxLength) mismatches.push(`max length ${plan.maxLength} (checkpoint: ${saved.maxLength})`);
  if (saved.pack !== plan.pack) mismatches.push(`packing ${plan.pack} (checkpoint: ${saved.pack})`);
  if (saved.rows !== rows) mismatches.push(`${rows} training rows (checkpoint: ${saved.rows})`);
  if (mismatches.length > 0) {
    throw new RuntimeInputError("E_CHECKPOINT", `cannot resume from ${file}: this run has ${mismatches.join(", ")}. Resume with the data and settings of the original run, or leave those options out to take them from the checkpoint.`, { file });
  }
}

/**
 * Names the checkpoints to go back to after update `failedStep` failed.
 * A checkpoint after step k contains the parameters that step k + 1 ran
 * on, so those up to failedStep − 2 gave a finite loss, and the one at
 * failedStep − 1 contains the parameters of the failed update.
 */
function describeCheckpoints(written: readonly { step: number; file: string }[], failedStep: number): string {
  const good = written.filter((checkpoint) => checkpoint.step <= failedStep - 2).pop();
  const suspect = written.find((checkpoint) => checkpoint.step === failedStep - 1);
  const goodText = good ? `The last checkpoint whose parameters gave a finite loss is ${good.file}.` : "No checkpoint has parameters that gave a finite loss.";
  return suspect ? `${goodText} ${suspect.file} contains the parameters of the failed update.` : goodText;
}

function validateOptions(options: TrainOptions): void {
  for (const [name, value] of Object.entries({ steps: options.steps, "batch size": options.batchSize, "max length": options.maxLength, "gradient accumulation": options.gradAccum, "eval every": options.evalEvery, "checkpoint every": options.checkpointEvery })) {
    positiveInteger(value, name);
  }
  if (options.steps !== undefined && options.epochs !== undefined) {
    throw new RuntimeInputError("E_TRAINING", "invalid options: give either steps or epochs, not both.");
  }
  if (options.epochs !== undefined && !(options.epochs > 0)) {
    throw new RuntimeInputError("E_TRAINING", `invalid epochs ${options.epochs}: it must be positive.`);
  }
  if (options.lr !== undefined && !(options.lr >= 0 && Number.isFinite(options.lr))) {
    throw new RuntimeInputError("E_TRAINING", `invalid learning rate ${options.lr}: it must be a finite non-negative number.`);
  }
  if (options.warmup !== undefined && !(Number.isSafeInteger(options.warmup) && options.warmup >= 0)) {
    throw new RuntimeInputError("E_TRAINING", `invalid warmup ${options.warmup}: it must be a non-negative integer.`);
  }
}

/** Resolves the run's settings from the options, the checkpoint and the defaults, and reads the datasets. */
function planRun(options: TrainOptions, artifacts: ArtifactFolder, saved: TrainingPosition | undefined, log: (line: string) => void): { plan: RunPlan; trainRows: Row[]; evalRows: Row[] | null } {
  const maxLength = options.maxLength ?? saved?.maxLength ?? artifacts.defaultMaxLength(TRAIN_DEFAULTS.maxLength);
  const pack = options.pack ?? saved?.pack ?? false;
  const trainRows = buildRows(readJsonlDataset(options.data, options.encoder), maxLength, pack);
  const evalRows: Row[] | null = options.evalData ? buildRows(readJsonlDataset(options.evalData, options.encoder), maxLength, pack) : null;
  checkRows(trainRows, artifacts.labelTarget, artifacts.tokenLimits);
  if (evalRows) checkRows(evalRows, artifacts.labelTarget, artifacts.tokenLimits);

  const batchSize = options.batchSize ?? saved?.batchSize ?? TRAIN_DEFAULTS.batchSize;
  const gradAccum = options.gradAccum ?? saved?.gradAccum ?? TRAIN_DEFAULTS.gradAccum;
  const rowsPerStep = batchSize * gradAccum;
  const totalSteps = options.steps ?? (options.epochs !== undefined || !saved ? Math.ceil(((options.epochs ?? TRAIN_DEFAULTS.epochs) * trainRows.length) / rowsPerStep) : saved.schedule.totalSteps);
  const schedule: Schedule = {
    name: options.schedule ?? saved?.schedule.name ?? TRAIN_DEFAULTS.schedule,
    lr: options.lr ?? saved?.schedule.lr ?? artifacts.specLearningRate ?? 1e-4,
    warmup: options.warmup ?? saved?.schedule.warmup ?? TRAIN_DEFAULTS.warmup,
    totalSteps,
  };
  const plan: RunPlan = { batchSize, gradAccum, maxLength, pack, seed: options.seed ?? saved?.seed ?? TRAIN_DEFAULTS.seed, schedule };
  if (saved) {
    checkResumable(options.resume!, saved, plan, trainRows.length);
    if (JSON.stringify(saved.schedule) !== JSON.stringify(schedule)) {
      log(`warning: the schedule ${JSON.stringify(schedule)} differs from the checkpoint's ${JSON.stringify(saved.schedule)}, so the losses will differ from an uninterrupted run.`);
    }
  }
  return { plan, trainRows, evalRows };
}

/**
 * Trains the artifact folder's parameters on a JSONL dataset and writes,
 * into `outDir`: metrics.jsonl, checkpoint-<step>.safetensors every
 * `checkpointEvery` updates and at the end, params.safetensors (the trained
 * tensors alone) and loss-curve.svg. A NaN or infinite loss or gradient
 * norm stops the run with E_TRAINING before that update is kept, leaving
 * earlier checkpoints as they are.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  validateOptions(options);
  const artifacts = new ArtifactFolder(options.artifactDir, options.device ?? "cpu");
  const log = options.log ?? (() => {});
  try {
    const paramNames = artifacts.paramNames;
    const resumed = options.resume ? readCheckpoint(options.resume, paramNames, artifacts.stateNames) : null;
    if (resumed) checkParameterShapes(artifacts.manifest.parameters, { ...resumed.params, ...resumed.state }, options.resume!, "E_CHECKPOINT");
    const saved = resumed?.position;

    const { plan, trainRows, evalRows } = planRun(options, artifacts, saved, log);
    const { batchSize, gradAccum, maxLength, pack, schedule } = plan;
    const totalSteps = schedule.totalSteps;
    const rowsPerStep = batchSize * gradAccum;
    const labels = artifacts.labelTarget;

    const stepKind = gradAccum === 1 ? "train" : "grad";
    let params: Record<string, ort.Tensor> = resumed?.params ?? artifacts.readParams();
    let state: Record<string, ort.Tensor> = resumed?.state ?? (await artifacts.zeroState(gradAccum === 1 ? "train" : "apply"));
    let step = saved?.step ?? 0;
    let position = saved?.position ?? 0;
    let dropoutRuns = saved?.dropoutRuns ?? 0;
    if (resumed && artifacts.hasDropout && dropoutRuns > 0) {
      await replayDropout(artifacts, stepKind, dropoutRuns, { params, state, lr: 0, step: 1 });
    }

    try {
      fs.mkdirSync(options.outDir, { recursive: true });
      const metrics = new MetricsWriter(path.join(options.outDir, "metrics.jsonl"));
      metrics.start(resumed ? step : null);
      const stream = new RowStream(trainRows, plan.seed);
      const progress = new TrainingProgress(options.progressStream ?? process.stderr, options.progress ?? true);
      const checkpoints: string[] = [];
      const losses: number[] = [];
      let lastEval: EvalResult | null = null;
      const written: { step: number; file: string }[] = resumed ? [{ step, file: options.resume! }] : [];
      const positionAt = (): TrainingPosition => ({ step, position, seed: plan.seed, schedule, batchSize, gradAccum, maxLength, pack, rows: trainRows.length, dropoutRuns });
      const saveCheckpoint = async (): Promise<void> => {
        const file = path.join(options.outDir, `checkpoint-${step}.safetensors`);
        writeCheckpoint(file, await artifacts.toHost(params), await artifacts.toHost(state), positionAt());
        checkpoints.push(file);
        written.push({ step, file });
      };

      // Open the step graph now, so the device line comes before the progress bar.
      await artifacts.session(stepKind);
      log(describeDevice(artifacts.placement!));
      progress.start(totalSteps, step);
      try {
        while (step < totalSteps) {
          const next = step + 1;
          const scheduled = learningRate(schedule, next);
          const lr = options.learningRateOverride ? options.learningRateOverride(next, scheduled) : scheduled;
          const rows = stream.take(position, rowsPerStep);
          const started = process.hrtime.bigint();
          let outcome: StepOutcome;
          if (gradAccum === 1) {
            outcome = await trainStep(artifacts, collate(rows, labels), { params, state, lr, step: next });
          } else {
            const micro = Array.from({ length: gradAccum }, (_, k) => collate(rows.slice(k * batchSize, (k + 1) * batchSize), labels));
            outcome = await accumulatedStep(artifacts, micro, { params, state, lr, step: next });
          }
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;

          if (!Number.isFinite(outcome.loss) || !Number.isFinite(outcome.gradNorm)) {
            const failure = Number.isFinite(outcome.loss) ? `gradient norm is ${outcome.gradNorm}` : `loss is ${outcome.loss}`;
            const sources = [...new Set(rows.map((row) => row.source))].join(", ");
          releaseReplaced(outcome.params, params);
          releaseReplaced(outcome.state, state);
            throw new RuntimeInputError(
              "E_TRAINING",
              `training stopped at step ${next}: the ${failure} on the batch of rows ${position}..${position + rowsPerStep - 1} (${sources}). ` +
                `The update was discarded. ${describeCheckpoints(written, next)} Lower the learning rate, add warmup or clip gradients, and check those rows.`,
              { step: next, position },
            );
          }

          releaseReplaced(params, outcome.params);
          releaseReplaced(state, outcome.state);
          params = outcome.params;
          state = outcome.state;
          step = next;
          position += rowsPerStep;
          dropoutRuns += gradAccum;
          losses.push(outcome.loss);
          const line: StepMetrics = {
            step,
            epoch: position / trainRows.length,
            loss: outcome.loss,
            lr,
            grad_norm: outcome.gradNorm,
            counted_tokens: outcome.countedTokens,
            tokens_per_s: seconds > 0 ? outcome.tokens / seconds : 0,
          };
          const evalDue = evalRows !== null && ((options.evalEvery !== undefined && step % options.evalEvery === 0) || step === totalSteps);
          if (evalDue) {
            lastEval = await evaluate(artifacts, params, evalRows!, batchSize);
            line.eval_loss = lastEval.loss;
            line.eval_ppl = lastEval.perplexity;
            log(`step ${step}: eval loss ${lastEval.loss.toFixed(4)}, perplexity ${lastEval.perplexity.toFixed(3)}`);
          }
          metrics.append(line);
          progress.update(step, outcome.loss, line.tokens_per_s);
          if ((options.checkpointEvery !== undefined && step % options.checkpointEvery === 0) || step === totalSteps) await saveCheckpoint();
        }
      } finally {
        progress.stop();
      }

      const paramsFile = path.join(options.outDir, "params.safetensors");
      writeParams(paramsFile, await artifacts.toHost(params));
      const lossCurveFile = path.join(options.outDir, "loss-curve.svg");
      writeLossCurve(lossCurveFile, metrics.read());
      return { losses, finalStep: step, outDir: options.outDir, paramsFile, metricsFile: metrics.file, lossCurveFile, checkpoints, lastEval };
    } finally {
      // Device buffers (WebGPU) of the last parameters and optimizer state; host tensors are left to the garbage collector.
      releaseOutputs(params);
      releaseOutputs(state);
    }
  } finally {
    await artifacts.release();
  }
}
