/**
 * Load, inspect and save benchmark: a GPT-2-small-shaped model (124M
 * parameters, external data) built by peftc's builder, and a graph with
 * LLaMA-2-13B weight shapes whose 48.5 GiB data file is sparse. Each step
 * runs in a fresh process so its peak memory is its own.
 * Usage: npm run bench -- [WORK_DIR]   (default: a temporary folder, removed afterwards)
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

interface StepResult {
  step: string;
  ms: number;
  peakRssMiB: number;
  startRssMiB: number;
  [key: string]: unknown;
}

const tsx = path.resolve(__dirname, "../node_modules/.bin/tsx");

function step(name: string, model: string, out?: string): StepResult {
  const args = [path.join(__dirname, "io-step.ts"), name, model, ...(out ? [out] : [])];
  const line = execFileSync(tsx, args, { encoding: "utf8", maxBuffer: 1 << 20 }).trim().split("\n").pop()!;
  return JSON.parse(line) as StepResult;
}

function row(model: string, result: StepResult, note = ""): string {
  return `| ${model} | ${result.step} | ${result.ms} | ${result.peakRssMiB} | ${Math.round((result.peakRssMiB - result.startRssMiB) * 10) / 10} | ${note} |`;
}

const keep = process.argv[2] !== undefined;
const work = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), "peftc-bench-"));
fs.mkdirSync(work, { recursive: true });
const rows: string[] = [];
try {
  const gpt2 = path.join(work, "gpt2-small", "model.onnx");
  fs.mkdirSync(path.dirname(gpt2), { recursive: true });
  rows.push(row("gpt2-small", step("build-gpt2", gpt2, gpt2), `${(fs.statSync(`${gpt2}.data`).size / 2 ** 20).toFixed(0)} MiB external data`));
  rows.push(row("gpt2-small", step("load", gpt2)));
  rows.push(row("gpt2-small", step("inspect", gpt2)));
  for (const kind of ["save-inline", "save-external", "save-linked"]) {
    const outDir = path.join(work, `gpt2-${kind}`);
    fs.mkdirSync(outDir, { recursive: true });
    rows.push(row("gpt2-small", step(kind, gpt2, path.join(outDir, "model.onnx"))));
  }
  const inline = path.join(work, "gpt2-save-inline", "model.onnx");
  rows.push(row("gpt2-small (inline)", step("load", inline), `${(fs.statSync(inline).size / 2 ** 20).toFixed(0)} MiB model file, weights inside`));

  const hugeDir = path.join(work, "llama-13b-shapes");
  const created = JSON.parse(execFileSync(tsx, [path.join(__dirname, "huge-model.ts"), hugeDir], { encoding: "utf8" })) as { dataBytes: number; diskBytes: number };
  const huge = path.join(hugeDir, "model.onnx");
  const note = `${(created.dataBytes / 2 ** 30).toFixed(1)} GiB sparse data file`;
  rows.push(row("llama-13b-shapes", step("load", huge), note));
  rows.push(row("llama-13b-shapes", step("inspect", huge), note));
  const linkDir = path.join(work, "llama-13b-linked");
  fs.mkdirSync(linkDir, { recursive: true });
  rows.push(row("llama-13b-shapes", step("save-linked", huge, path.join(linkDir, "model.onnx")), "weights hard-linked, not copied"));
} finally {
  if (!keep) fs.rmSync(work, { recursive: true, force: true });
}

process.stdout.write(
  ["| model | step | wall ms | peak RSS MiB | RSS added MiB | note |", "| --- | --- | ---: | ---: | ---: | --- |", ...rows].join("\n") + "\n",
);
