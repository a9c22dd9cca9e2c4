import { type Command, InvalidArgumentError, Option } from "commander";
import type { DemoAccuracy } from "../demo";
import type { CliIo } from "./main";

interface DemoCommandOptions {
  steps?: number;
  task?: "reverse" | "increment";
  out?: string;
}

/** Sample generations printed for each model. */
const SAMPLES_SHOWN = 4;

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < 1) {
    throw new InvalidArgumentError(`invalid value ${JSON.stringify(value)}: expected a positive integer.`);
  }
  return parsed;
}

function formatAccuracy(label: string, result: DemoAccuracy): string {
  const correct = result.samples.filter((sample) => sample.correct).length;
  const lines = [`${label}: ${(result.accuracy * 100).toFixed(1)}% exact match (${correct}/${result.samples.length})`];
  for (const sample of result.samples.slice(0, SAMPLES_SHOWN)) {
    lines.push(`  ${sample.prompt}${sample.generated}  ${sample.correct ? "correct" : `wrong, expected ${sample.expected}`}`);
  }
  return lines.join("\n") + "\n";
}

/** Adds `peftc demo`. */
export function registerDemo(program: Command, io: CliIo): void {
  program
    .command("demo")
    .description(
      "Fine-tune a LoRA adapter end to end, offline: compile specs/demo-lora.ts against a 76K-parameter decoder that peftc pretrained to copy digit strings (\"4071>\" gives \"4071\"), " +
        "train it to reverse them instead (or, with --task increment, to add 1 to each digit), and print the held-out exact-match accuracy of greedy generation before and after.",
    )
    .option("--steps <n>", "optimizer updates of the fine-tuning run (default: 500)", positiveInteger)
    .addOption(new Option("--task <name>", "task the adapter learns: reverse the digits, or add 1 to each digit modulo 10 (default: reverse)").choices(["reverse", "increment"]))
    .option("--out <dir>", "keep the artifacts, the generated data and the trained parameters in this folder (default: a temporary folder, deleted at the end)")
    .action(async (options: DemoCommandOptions) => {
      const { runDemo } = await import("../demo");
      const result = await runDemo({ steps: options.steps, task: options.task, outDir: options.out, log: (line) => io.stderr(`${line}\n`) });
      io.stdout(`${result.summary}\n`);
      io.stdout(formatAccuracy(`base model on "${result.task}"`, result.base));
      io.stdout(`fine-tuned ${result.steps} steps in ${result.trainSeconds.toFixed(1)} s, loss ${result.firstLoss.toFixed(4)} -> ${result.lastLoss.toFixed(4)}\n`);
      io.stdout(formatAccuracy(`adapted model on "${result.task}"`, result.adapted));
      if (result.outDir !== null) io.stdout(`kept the artifacts in ${result.outDir}\n`);
    });
}
