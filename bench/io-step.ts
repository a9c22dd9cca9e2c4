/**
 * One measured step of the I/O benchmark, run in its own process so that its
 * peak memory is its own: `tsx bench/io-step.ts STEP MODEL [OUT]`.
 * Prints one JSON line: {step, ms, peakRssMiB}.
 */
import * as path from "node:path";
import { loadModel, saveModel } from "../compiler/ir/io";
import { summarizeModel } from "../compiler/inspect/summary";
import { peakRssBytes, timed } from "./measure";
import { GPT2_SMALL, buildGpt2 } from "../fixtures/models/gpt2";

const [step, modelPath, outPath] = process.argv.slice(2);
const baselineRss = peakRssBytes();
let ms: number;
let detail: Record<string, unknown> = {};
switch (step) {
  case "build-gpt2": {
    // GPT-2 small: 124,439,808 parameters, seeded, written with external data.
    const run = timed(() => saveModel(buildGpt2(GPT2_SMALL), outPath, { externalDataThreshold: 1024 }));
    ms = run.ms;
    break;
  }
  case "load": {
    ms = timed(() => loadModel(modelPath)).ms;
    break;
  }
  case "inspect": {
    const run = timed(() => summarizeModel(loadModel(modelPath), modelPath));
    ms = run.ms;
    detail = { parameters: run.result.parameters.count, externalBytes: run.result.externalData.reduce((sum, file) => sum + file.bytes, 0) };
    break;
  }
  case "save-inline": {
    const model = loadModel(modelPath);
    ms = timed(() => saveModel(model, outPath, { existingExternalData: "inline" })).ms;
    break;
  }
  case "save-external": {
    const model = loadModel(modelPath);
    ms = timed(() => saveModel(model, outPath, { externalDataThreshold: 1024 })).ms;
    break;
  }
  case "save-linked": {
    // Keeps weights in their external file and hard-links it next to the copy.
    const model = loadModel(modelPath);
    const run = timed(() => saveModel(model, outPath));
    ms = run.ms;
    detail = { placed: run.result };
    break;
  }
  default:
    throw new Error(`unknown step "${step}"; expected build-gpt2, load, inspect, save-inline, save-external or save-linked`);
}
const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;
process.stdout.write(
  `${JSON.stringify({ step, model: path.basename(modelPath), ms: Math.round(ms), peakRssMiB: mib(peakRssBytes()), startRssMiB: mib(baselineRss), ...detail })}\n`,
);
