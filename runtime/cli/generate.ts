import * as fs from "node:fs";
import * as path from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { PeftcError } from "../../compiler/errors";
import type { CliIo } from "./main";

interface GenerateCommandOptions {
  prompt?: string[];
  tokenizer?: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
  stop?: string[];
  params?: string;
  device: "cpu" | "webgpu" | "cuda" | "auto";
  stream: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseNumber(check: (value: number) => boolean, requirement: string): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (text.trim() === "" || !check(value)) throw new InvalidArgumentError(`"${text}" is invalid: it must be ${requirement}.`);
    return value;
  };
}

/**
 * Prints streamed rows one after another: the first row live, later rows
 * buffered until every row before them has finished.
 */
class StreamPrinter {
  private current = 0;
  private readonly buffers: string[];
  private readonly done: boolean[];

  constructor(
    private readonly io: CliIo,
    prompts: string[],
  ) {
    this.buffers = [...prompts];
    this.done = prompts.map(() => false);
    this.io.stdout(this.buffers[0]);
    this.buffers[0] = "";
  }

  add(row: number, text: string, finished: boolean): void {
    this.buffers[row] += text;
    if (finished) this.done[row] = true;
    this.print();
  }

  /** Prints what is left once generation returned, because rows with no tokens at all (--max-new-tokens 0) get no event. */
  finish(): void {
    this.done.fill(true);
    this.print();
  }

  private print(): void {
    while (this.current < this.buffers.length) {
      this.io.stdout(this.buffers[this.current]);
      this.buffers[this.current] = "";
      if (!this.done[this.current]) return;
      this.io.stdout("\n");
      this.current++;
    }
  }
}

/** Adds `peftc generate ARTIFACT_DIR --prompt TEXT`. */
export function registerGenerate(program: Command, io: CliIo): void {
  program
    .command("generate")
    .description(
      "Generate text with an artifact folder's KV-cached infer.onnx. Several prompts run as one left-padded batch; " +
        "each prompt is printed with its continuation on its own line. The device line goes to stderr.",
    )
    .argument("<artifact-dir>", "artifact folder written by `peftc compile` (infer.onnx, params.safetensors, manifest.json)")
    .option("--prompt <text>", "prompt text (required, repeat the option for a batch)", collect)
    .option("--tokenizer <file>", "Hugging Face tokenizer.json, with BOS and EOS set by the tokenizer_config.json beside it (default: <artifact-dir>/tokenizer.json)")
    .option("--max-new-tokens <n>", "maximum number of generated tokens per prompt", parseNumber((n) => Number.isInteger(n) && n >= 0, "an integer of at least 0"), 64)
    .option("--temperature <t>", "softmax temperature, or 0 to decode greedily", parseNumber((t) => Number.isFinite(t) && t >= 0, "a number of at least 0"), 0)
    .option("--top-k <k>", "sample from the k most likely tokens, or 0 to keep all", parseNumber((k) => Number.isInteger(k) && k >= 0, "an integer of at least 0"), 0)
    .option("--top-p <p>", "sample from the smallest set of tokens whose probability reaches p, or 1 to keep all", parseNumber((p) => p > 0 && p <= 1, "a number in (0, 1]"), 1)
    .option("--repetition-penalty <r>", "divide positive logits of tokens already in the sequence by r and multiply negative ones, or 1 to turn it off", parseNumber((r) => Number.isFinite(r) && r > 0, "a number above 0"), 1)
    .option("--seed <s>", "seed of the sampling random number generator", parseNumber((s) => Number.isInteger(s) && s >= 0 && s <= 0xffffffff, "an integer from 0 to 4294967295"), 0)
    .option("--stop <text>", "stop a row when its text contains this string, which is cut off (repeat the option for several)", collect)
    .option("--params <file>", "safetensors file of parameters (a checkpoint or another adapter) that replace params.safetensors")
    .addOption(new Option("--device <device>", "execution provider (auto tries cuda, then webgpu where a GPU exists, then cpu); on WebGPU the KV cache stays in GPU buffers").choices(["cpu", "webgpu", "cuda", "auto"]).default("cpu"))
    .option("--stream", "print tokens as they are generated")
    .action(async (dir: string, options: GenerateCommandOptions) => {
      const { Generator } = await import("../generator");
      const { describeDevice } = await import("../session");
      const prompts = options.prompt ?? [];
      if (prompts.length === 0) throw new PeftcError("E_GENERATE", "no prompt given: pass at least one --prompt TEXT.");
      if (!fs.existsSync(dir)) throw new PeftcError("E_FILE_NOT_FOUND", `artifact folder ${dir} not found. Check the path.`, { file: dir });
      const tokenizerFile = options.tokenizer ?? path.join(dir, "tokenizer.json");
      if (!fs.existsSync(tokenizerFile)) {
        throw new PeftcError("E_FILE_NOT_FOUND", `tokenizer ${tokenizerFile} not found. Pass the model's tokenizer.json with --tokenizer.`, { file: tokenizerFile });
      }

      const generator = await Generator.open(dir, { device: options.device, tokenizer: tokenizerFile, params: options.params });
      try {
        io.stderr(`${describeDevice({ device: generator.device, skipped: generator.skippedDevices })}\n`);
        const printer = options.stream ? new StreamPrinter(io, prompts) : null;
        const generations = await generator.generate(prompts, {
          maxNewTokens: options.maxNewTokens,
          temperature: options.temperature,
          topK: options.topK,
          topP: options.topP,
          repetitionPenalty: options.repetitionPenalty,
          seed: options.seed,
          stop: options.stop,
          onToken: printer ? (event) => printer.add(event.row, event.text, event.finishReason !== null) : undefined,
        });
        printer?.finish();
        if (!printer) {
          for (const [row, generation] of generations.entries()) io.stdout(`${prompts[row]}${generation.text ?? ""}\n`);
        }
      } finally {
        await generator.release();
      }
    });
}
