/**
 * Decoding benchmark: time per generated token against context length, for
 * infer.onnx with its KV cache and for full recomputation (the same graph
 * run over the whole sequence with an empty cache, as a graph without cache
 * must), and for infer.onnx with onnxruntime's fused MultiHeadAttention
 * kernel (`inference: { fusedAttention: true }`). Runs on a LLaMA-shaped
 * builder model with LoRA adapters as inputs.
 * Usage: npm run bench:decode -- [WORK_DIR]   (default: a temporary folder, removed afterwards)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { defineSpec, lora, select } from "../compiler/dsl";
import { compileArtifacts } from "../compiler/emit/compile";
import { readSafetensors } from "../compiler/emit/safetensors";
import { saveModel } from "../compiler/ir/io";
import { buildLlama } from "../fixtures/models/llama";

const CONTEXTS = [32, 64, 128, 256, 512, 1024];
const STEPS = 8;

function ids(count: number, offset = 0): ort.Tensor {
  return new ort.Tensor("int64", BigInt64Array.from({ length: count }, (_, i) => BigInt(((i + offset) * 7919) % 4000)), [1, count]);
}

function ones(count: number): ort.Tensor {
  return new ort.Tensor("int64", BigInt64Array.from({ length: count }, () => 1n), [1, count]);
}

async function main(): Promise<void> {
  const keep = process.argv[2] !== undefined;
  const work = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), "peftc-bench-decode-"));
  try {
    const config = { layers: 8, hidden: 512, heads: 8, kvHeads: 4, intermediate: 1376, vocab: 4096, opset: 17, seed: 0 };
    const model = path.join(work, "model.onnx");
    saveModel(buildLlama(config), model, { externalDataThreshold: 1024 });
    const out = path.join(work, "out");
    const methods = [lora({ targets: select.role("attn.q", "attn.v"), rank: 8 })];
    compileArtifacts({ modelFile: model, outDir: out, spec: defineSpec({ methods }) });
    compileArtifacts({ modelFile: model, outDir: path.join(work, "fused"), spec: defineSpec({ methods, inference: { fusedAttention: true } }) });
    const session = await ort.InferenceSession.create(path.join(out, "infer.onnx"), { logSeverityLevel: 3 });
    const fusedSession = await ort.InferenceSession.create(path.join(work, "fused", "infer.onnx"), { logSeverityLevel: 3 });
    const params: Record<string, ort.Tensor> = {};
    for (const [name, tensor] of readSafetensors(path.join(out, "params.safetensors")).tensors) params[name] = new ort.Tensor("float32", tensor.data() as Float32Array, [...tensor.dims]);
    const pastNames = session.inputNames.filter((name) => name.startsWith("past_key_values."));
    const empty = Object.fromEntries(pastNames.map((name) => [name, new ort.Tensor("float32", new Float32Array(0), [1, config.kvHeads, 0, config.hidden / config.heads])]));

    console.log(`model: ${JSON.stringify(config)}`);
    console.log("| context | cached ms/token | cached, fused ms/token | full recomputation ms/token | full / cached |");
    console.log("| ---: | ---: | ---: | ---: | ---: |");
    const cachedStep = async (graph: ort.InferenceSession, context: number): Promise<number> => {
      const prefill = await graph.run({ input_ids: ids(context), attention_mask: ones(context), ...empty, ...params });
      let cache = Object.fromEntries(pastNames.map((name) => [name, prefill[name.replace("past_key_values.", "present.")] as ort.Tensor]));
      const begun = process.hrtime.bigint();
      for (let step = 0; step < STEPS; step++) {
        const outputs = await graph.run({ input_ids: ids(1, context + step), attention_mask: ones(context + step + 1), ...cache, ...params });
        cache = Object.fromEntries(pastNames.map((name) => [name, outputs[name.replace("past_key_values.", "present.")] as ort.Tensor]));
      }
      return Number(process.hrtime.bigint() - begun) / 1e6 / STEPS;
    };
    for (const context of CONTEXTS) {
      const cached = await cachedStep(session, context);
      const fused = await cachedStep(fusedSession, context);
      const started = process.hrtime.bigint();
      const repeats = 3;
      for (let step = 0; step < repeats; step++) await session.run({ input_ids: ids(context + step + 1), attention_mask: ones(context + step + 1), ...empty, ...params });
      const full = Number(process.hrtime.bigint() - started) / 1e6 / repeats;
      console.log(`| ${context} | ${cached.toFixed(2)} | ${fused.toFixed(2)} | ${full.toFixed(2)} | ${(full / cached).toFixed(1)} |`);
    }
  } finally {
    if (!keep) fs.rmSync(work, { recursive: true, force: true });
  }
}

void main();
