import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import { compileArtifacts } from "../../../compiler/emit/compile";
import type { Manifest } from "../../../compiler/emit/manifest";
import { readSafetensors, writeSafetensors } from "../../../compiler/emit/safetensors";
import { loadModel, saveModel } from "../../../compiler/ir/io";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { runCli } from "../../../runtime/cli/main";
import { int64Matrix } from "../../helpers/artifacts";
import { CORPUS_DIR, hasCorpus } from "../../helpers/corpus";
import { openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");

/** Compiles, fills B with non-zero values, and exports the result as a PEFT adapter folder. */
async function trainedAdapter(model: string, targets: ReturnType<typeof select.role>): Promise<{ adapter: string; params: Map<string, Tensor> }> {
  const out = path.join(makeTempDir(), "first");
  compileArtifacts({ modelFile: model, outDir: out, spec: defineSpec({ methods: [lora({ targets, rank: 4, alpha: 8 })] }) });
  const params = readSafetensors(path.join(out, "params.safetensors")).tensors;
  for (const [name, tensor] of params) {
    if (name.endsWith("lora_B")) params.set(name, Tensor.fromArray(name, DataType.FLOAT, tensor.dims, Float32Array.from({ length: tensor.size }, (_, i) => Math.cos(i * 0.37) * 0.05)));
  }
  fs.rmSync(path.join(out, "params.safetensors"));
  writeSafetensors(path.join(out, "params.safetensors"), params);
  const adapter = path.join(makeTempDir(), "adapter");
  const status = await runCli(["export-adapter", out, "--out", adapter], { stdout: () => undefined, stderr: (text) => process.stderr.write(text) });
  expect(status).toBe(0);
  return { adapter, params };
}

async function lastLogits(file: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const session = await openSession(file);
  const cache: Record<string, ort.Tensor> = {};
  for (const input of session.inputMetadata) {
    if (!input.name.startsWith("past_key_values.")) continue;
    const shape = (input as unknown as { shape: readonly (number | string)[] }).shape;
    cache[input.name] = new ort.Tensor("float32", new Float32Array(0), [1, shape[1] as number, 0, shape[3] as number]);
  }
  const wanted = Object.fromEntries(session.inputNames.filter((name) => feeds[name]).map((name) => [name, feeds[name]]));
  const outputs = await session.run({ ...wanted, ...cache });
  await session.release();
  return outputs.logits.data as Float32Array;
}

const IDS = [1, 5, 9, 2, 44, 17, 3];
const BATCH = { input_ids: int64Matrix([IDS]), attention_mask: int64Matrix([IDS.map(() => 1)]) };

describe("merged adapters", () => {
  test.each([
    ["llama-tiny.onnx", select.role("attn.q", "attn.v", "mlp.down")],
    // Conv1D [in, out] weights; LoRA on parts of c_attn exports as a whole-c_attn adapter, so the whole module is adapted here.
    ["gpt2-tiny-op17.onnx", select.role("attn.qkv", "mlp.down")],
  ])("%s: merged infer.onnx equals unmerged", async (fixture, targets) => {
    const model = path.join(FIXTURES, fixture);
    const { adapter } = await trainedAdapter(model, targets);
    const spec = (mergeAdapters: boolean): ReturnType<typeof defineSpec> => defineSpec({ methods: [lora({ targets, rank: 4, alpha: 8 })], inference: { mergeAdapters } });
    const merged = path.join(makeTempDir(), "merged");
    const unmerged = path.join(makeTempDir(), "unmerged");
    compileArtifacts({ modelFile: model, outDir: merged, spec: spec(true), adapterDir: adapter });
    compileArtifacts({ modelFile: model, outDir: unmerged, spec: spec(false), adapterDir: adapter });

    const manifest = JSON.parse(fs.readFileSync(path.join(merged, "manifest.json"), "utf8")) as Manifest;
    expect(manifest.merged.length).toBeGreaterThan(0);
    expect(manifest.graphs.infer!.inputs.some((name) => name.includes("lora"))).toBe(false);
    const params: Record<string, ort.Tensor> = {};
    for (const [name, tensor] of readSafetensors(path.join(unmerged, "params.safetensors")).tensors) params[name] = new ort.Tensor("float32", tensor.data() as Float32Array, [...tensor.dims]);
    const withMerge = await lastLogits(path.join(merged, "infer.onnx"), BATCH);
    const withInputs = await lastLogits(path.join(unmerged, "infer.onnx"), { ...BATCH, ...params });
    const base = await lastLogits(model, BATCH);
    let worst = 0;
    let change = 0;
    for (let i = 0; i < withMerge.length; i++) {
      worst = Math.max(worst, Math.abs(withMerge[i] - withInputs[i]));
      change = Math.max(change, Math.abs(withInputs[i] - base[i]));
    }
    // The merged weight rounds W + ΔW once; the branch rounds x·A·B separately. Both are float32.
    expect(worst).toBeLessThan(1e-4);
    expect(change).toBeGreaterThan(1e-3);
  });

  test("merged weights go to new external data, the rest stays linked", async () => {
    const dir = makeTempDir();
    const model = path.join(dir, "model.onnx");
    saveModel(loadModel(path.join(FIXTURES, "llama-tiny.onnx")), model, { externalDataThreshold: 1024 });
    const targets = select.role("attn.q");
    const { adapter } = await trainedAdapter(model, targets);
    const out = path.join(makeTempDir(), "merged");
    const result = compileArtifacts({ modelFile: model, outDir: out, spec: defineSpec({ methods: [lora({ targets, rank: 4, alpha: 8 })], inference: { mergeAdapters: true } }), adapterDir: adapter });
    expect(result.files).toContain("infer.onnx.data");
    // Two q_proj weights of 64 × 64 float32, each 64-byte aligned.
    expect(fs.statSync(path.join(out, "infer.onnx.data")).size).toBe(2 * 64 * 64 * 4);
    expect(fs.statSync(path.join(out, "model.onnx.data")).ino).toBe(fs.statSync(`${model}.data`).ino);
    const logits = await lastLogits(path.join(out, "infer.onnx"), BATCH);
    expect(logits.every(Number.isFinite)).toBe(true);
  });
});

(hasCorpus ? describe : describe.skip)("graphs that already have a cache", () => {
  test("parameter names match the graph without cache", () => {
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4 })] });
    const names = (file: string): string[] => {
      const out = path.join(makeTempDir(), "out");
      return compileArtifacts({ modelFile: path.join(CORPUS_DIR, "aidreams260K", file), outDir: out, spec }).manifest.parameters.map((parameter) => parameter.name);
    };
    expect(names("model_with_past.onnx")).toEqual(names("model.onnx"));
  });
});
