/**
 * Training benchmark: a LoRA step of train.onnx on a LLaMA-shaped builder
 * model with and without activation checkpointing (step time and peak
 * memory), and compiling a graph with LLaMA-2-13B weight shapes whose
 * weights are never read.
 * Usage: npm run bench:train -- [WORK_DIR]   (default: a temporary folder, removed afterwards)
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { saveModel } from "../compiler/ir/io";
import { buildLlama } from "../fixtures/models/llama";

const tsx = path.resolve(__dirname, "../node_modules/.bin/tsx");

function run(args: string[]): Record<string, number> {
  const line = execFileSync(tsx, [path.join(__dirname, "train-step.ts"), ...args], { encoding: "utf8", maxBuffer: 1 << 20 }).trim().split("\n").pop()!;
  return JSON.parse(line) as Record<string, number>;
}

const keep = process.argv[2] !== undefined;
const work = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), "peftc-bench-train-"));
fs.mkdirSync(work, { recursive: true });
try {
  // 8 layers, hidden 512, GQA 8/4 heads, vocab 4096: 27M parameters, small enough for 2 cores.
  const config = { layers: 8, hidden: 512, heads: 8, kvHeads: 4, intermediate: 1376, vocab: 4096, opset: 17, seed: 0 };
  const model = path.join(work, "llama-27m", "model.onnx");
  fs.mkdirSync(path.dirname(model), { recursive: true });
  saveModel(buildLlama(config), model, { externalDataThreshold: 1024 });
  console.log(`model: ${JSON.stringify(config)}`);
  console.log("| run | batch × sequence | compile ms | step ms (median) | peak RSS MiB | RSS added MiB | loss first → last |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: | --- |");
  for (const [batch, sequence] of [
    [4, 256],
    [8, 512],
  ]) {
    for (const mode of ["plain", "checkpoint"]) {
      const result = run([model, path.join(work, `${mode}-${batch}x${sequence}`), mode, "6", String(batch), String(sequence)]);
      console.log(`| ${mode} | ${batch} × ${sequence} | ${result.compileMs} | ${result.stepMs} | ${result.peakRssMiB} | ${Math.round((result.peakRssMiB - result.startRssMiB) * 10) / 10} | ${result.lossFirst.toFixed(3)} → ${result.lossLast.toFixed(3)} |`);
    }
  }

  const hugeDir = path.join(work, "llama-13b-shapes");
  const created = JSON.parse(execFileSync(tsx, [path.join(__dirname, "huge-model.ts"), hugeDir], { encoding: "utf8" })) as { dataBytes: number };
  const compiled = run([path.join(hugeDir, "model.onnx"), path.join(work, "llama-13b-out"), "plain", "0", "0", "0", "compile-only"]);
  console.log(`\ncompile llama-13b-shapes (${(created.dataBytes / 2 ** 30).toFixed(1)} GiB sparse data): ${JSON.stringify(compiled)}`);
} finally {
  if (!keep) fs.rmSync(work, { recursive: true, force: true });
}
