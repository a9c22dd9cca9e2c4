/**
 * Device benchmark: trains the same LoRA artifacts on each requested
 * execution provider and decodes with their infer.onnx, printing the
 * provider each run took, the median step time, the losses' largest
 * relative difference from the CPU run, whether greedy decoding gives the
 * CPU run's tokens, and decoding speed. It is the
 * check to run on a machine with a GPU (see bench/gpu/README.md).
 * Usage: npm run bench:devices -- [DEVICES] [WORK_DIR]
 *   DEVICES: comma-separated, default cpu,webgpu,cuda
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { adamw, defineSpec, lora, select } from "../compiler/dsl";
import { compileArtifacts } from "../compiler/emit/compile";
import { saveModel } from "../compiler/ir/io";
import { buildLlama } from "../fixtures/models/llama";
import { Generator } from "../runtime/generator";
import type { ExecutionDevice } from "../runtime/session";
import { train } from "../runtime/trainer/trainer";

const STEPS = 12;
const BATCH = 4;
const SEQUENCE = 128;
const NEW_TOKENS = 64;

async function main(): Promise<void> {
  const devices = (process.argv[2] ?? "cpu,webgpu,cuda").split(",") as ExecutionDevice[];
  const keep = process.argv[3] !== undefined;
  const work = process.argv[3] ?? fs.mkdtempSync(path.join(os.tmpdir(), "peftc-bench-devices-"));
  fs.mkdirSync(work, { recursive: true });
  try {
    // 4 layers, hidden 256, GQA 8/4 heads, vocab 2048: about 4M parameters.
    const config = { layers: 4, hidden: 256, heads: 8, kvHeads: 4, intermediate: 688, vocab: 2048, opset: 17, seed: 0 };
    const model = path.join(work, "model", "model.onnx");
    fs.mkdirSync(path.dirname(model), { recursive: true });
    saveModel(buildLlama(config), model, { externalDataThreshold: 1024 });
    const artifacts = path.join(work, "artifacts");
    const spec = defineSpec({ methods: [lora({ targets: select.allLinear(), rank: 8, alpha: 16 })], train: { optimizer: adamw({ lr: 1e-3 }) }, seed: 1 });
    compileArtifacts({ modelFile: model, outDir: artifacts, spec });
    const data = path.join(work, "data.jsonl");
    const rows = Array.from({ length: STEPS * BATCH }, (_, row) => ({ input_ids: Array.from({ length: SEQUENCE }, (_, t) => (row * 7 + t * 3) % config.vocab) }));
    fs.writeFileSync(data, rows.map((row) => JSON.stringify(row)).join("\n") + "\n");

    console.log(`model: ${JSON.stringify(config)}; LoRA r=8 on every linear layer; ${STEPS} steps of ${BATCH} × ${SEQUENCE} tokens`);
    console.log("| requested | took | step ms (median) | first step ms | loss first → last | max rel. loss diff vs cpu | tokens as cpu | decode ms/token |");
    console.log("| --- | --- | ---: | ---: | --- | ---: | --- | ---: |");
    let reference: number[] | null = null;
    let referenceTokens: number[] | null = null;
    for (const device of devices) {
      const lines: string[] = [];
      try {
        const started: number[] = [];
        const result = await train({
          artifactDir: artifacts,
          data,
          steps: STEPS,
          batchSize: BATCH,
          maxLength: SEQUENCE,
          outDir: path.join(work, `train-${device}`),
          device,
          progress: false,
          log: (line) => lines.push(line),
          learningRateOverride: (_step, scheduled) => {
            started.push(performance.now());
            return scheduled;
          },
        });
        const stepMs = started.slice(1).map((time, i) => time - started[i]);
        const sorted = stepMs.slice(1).sort((a, b) => a - b);
        const took = lines.find((line) => line.startsWith("device:"))?.split(/[ .]/)[1] ?? "cpu";
        if (device === "cpu") reference = result.losses;
        const difference = reference ? Math.max(...result.losses.map((loss, i) => Math.abs(loss - reference![i]) / Math.abs(reference![i]))) : Number.NaN;
        const generator = await Generator.open(artifacts, { device, tokenizer: null, params: path.join(work, `train-${device}`, "params.safetensors") });
        const decodeStarted = performance.now();
        const [generation] = await generator.generate([[1, 2, 3, 4, 5, 6, 7, 8]], { maxNewTokens: NEW_TOKENS, eosTokenIds: [] });
        const decodeMs = (performance.now() - decodeStarted) / NEW_TOKENS;
        await generator.release();
        if (device === "cpu") referenceTokens = generation.ids;
        let sameTokens = "no cpu run";
        if (referenceTokens) {
          const firstDifferent = generation.ids.findIndex((id, i) => id !== referenceTokens![i]);
          sameTokens = firstDifferent === -1 ? `all ${NEW_TOKENS}` : `first ${firstDifferent}`;
        }
        console.log(`| ${device} | ${took} | ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} | ${stepMs[0].toFixed(0)} | ${result.losses[0].toFixed(4)} → ${result.losses[result.losses.length - 1].toFixed(4)} | ${difference.toExponential(2)} | ${sameTokens} | ${decodeMs.toFixed(2)} |`);
      } catch (error) {
        console.log(`| ${device} | unavailable | | | | | | |\n  ${String((error as Error).message).split("\n")[0]}`);
      }
    }
  } finally {
    if (!keep) fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
