/**
 * One training benchmark run, in its own process so its peak memory is its
 * own: compiles MODEL with LoRA on every linear layer (with or without
 * activation checkpointing), then runs STEPS steps of train.onnx on a fixed
 * random batch and prints one JSON line.
 * Usage: tsx bench/train-step.ts MODEL OUT_DIR checkpoint|plain STEPS BATCH SEQUENCE [compile-only]
 */
import * as ort from "onnxruntime-node";
import { adamw, defineSpec, lora, select } from "../compiler/dsl";
import { compileArtifacts } from "../compiler/emit/compile";
import { readSafetensors } from "../compiler/emit/safetensors";
import { peakRssBytes, timed } from "./measure";

async function main(): Promise<void> {
  const [model, outDir, mode, stepsText, batchText, sequenceText, compileOnly] = process.argv.slice(2);
  const startRss = process.memoryUsage().rss;
  const spec = defineSpec({
    methods: [lora({ targets: select.allLinear(), rank: 8, alpha: 16 })],
    train: { optimizer: adamw({ lr: 1e-3 }), checkpointActivations: mode === "checkpoint" },
  });
  const compiled = timed(() => compileArtifacts({ modelFile: model, outDir, spec }));
  if (compileOnly) {
    console.log(JSON.stringify({ compileMs: Math.round(compiled.ms), peakRssMiB: round(peakRssBytes()), startRssMiB: round(startRss), trainable: compiled.result.manifest.summary.trainable }));
    return;
  }
  const session = await ort.InferenceSession.create(`${outDir}/train.onnx`, { logSeverityLevel: 3 });
  const [batch, sequence, steps] = [Number(batchText), Number(sequenceText), Number(stepsText)];
  let state = 12345;
  const ids = BigInt64Array.from({ length: batch * sequence }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return BigInt(state % 1000);
  });
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", ids, [batch, sequence]),
    attention_mask: new ort.Tensor("int64", BigInt64Array.from(ids, () => 1n), [batch, sequence]),
    labels: new ort.Tensor("int64", ids, [batch, sequence]),
    lr: new ort.Tensor("float32", Float32Array.of(1e-3), []),
  };
  for (const [name, tensor] of readSafetensors(`${outDir}/params.safetensors`).tensors) feeds[name] = new ort.Tensor("float32", tensor.data() as Float32Array, [...tensor.dims]);
  for (const name of compiled.result.manifest.optimizer.state) {
    const base = feeds[name.replace(/\.(m|v)$/, "")];
    feeds[name] = new ort.Tensor("float32", new Float32Array(base.data.length), base.dims);
  }
  const times: number[] = [];
  const losses: number[] = [];
  for (let step = 1; step <= steps; step++) {
    feeds.step = new ort.Tensor("int64", BigInt64Array.of(BigInt(step)), []);
    const started = process.hrtime.bigint();
    const outputs = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
    losses.push(outputs.loss.data[0] as number);
    for (const name of Object.keys(feeds)) if (outputs[`${name}.new`]) feeds[name] = outputs[`${name}.new`] as ort.Tensor;
  }
  // The first step includes onnxruntime's allocations; the median of the rest is the steady step time.
  const steady = times.slice(1).sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      compileMs: Math.round(compiled.ms),
      stepMs: Math.round(steady[Math.floor(steady.length / 2)] * 10) / 10,
      firstStepMs: Math.round(times[0]),
      peakRssMiB: round(peakRssBytes()),
      startRssMiB: round(startRss),
      lossFirst: losses[0],
      lossLast: losses[losses.length - 1],
    }),
  );
}

function round(bytes: number): number {
  return Math.round((bytes / 2 ** 20) * 10) / 10;
}

void main();
