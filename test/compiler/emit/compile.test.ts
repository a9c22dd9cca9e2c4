import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import { type CompileOptions, compileArtifacts } from "../../../compiler/emit/compile";
import type { Manifest } from "../../../compiler/emit/manifest";
import { readSafetensors } from "../../../compiler/emit/safetensors";
import { loadModel, saveModel } from "../../../compiler/ir/io";
import { openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const LLAMA = path.join(FIXTURES, "llama-tiny.onnx");
const SPEC = defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8, bias: "none" })] });

afterAll(removeTempDirs);

function compile(options: Partial<CompileOptions> & { outDir: string }): ReturnType<typeof compileArtifacts> {
  return compileArtifacts({ modelFile: LLAMA, spec: SPEC, specFile: "lora.ts", ...options });
}

function readManifest(dir: string): Manifest {
  return JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as Manifest;
}

/** Feeds params.safetensors as the graph's parameter inputs, with `overrides` replacing some. */
function paramFeeds(dir: string, overrides: Record<string, ort.Tensor> = {}): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of readSafetensors(path.join(dir, "params.safetensors")).tensors) feeds[name] = new ort.Tensor("float32", tensor.data() as Float32Array, [...tensor.dims]);
  return { ...feeds, ...overrides };
}

const FEEDS = {
  input_ids: new ort.Tensor("int64", BigInt64Array.from([1n, 5n, 9n, 2n]), [1, 4]),
  attention_mask: new ort.Tensor("int64", BigInt64Array.from([1n, 1n, 1n, 1n]), [1, 4]),
};
const LABELS = { labels: new ort.Tensor("int64", BigInt64Array.from([1n, 5n, 9n, 2n]), [1, 4]) };

describe("compileArtifacts", () => {
  test("writes the artifact folder", () => {
    const out = path.join(makeTempDir(), "out");
    const result = compile({ outDir: out });
    expect(fs.readdirSync(out).sort()).toEqual(["apply.onnx", "eval.onnx", "grad.onnx", "infer.onnx", "manifest.json", "model.d.ts", "params.safetensors", "train.onnx"]);
    expect(result.files).toEqual(["eval.onnx", "grad.onnx", "train.onnx", "apply.onnx", "infer.onnx", "params.safetensors", "model.d.ts", "manifest.json"]);
    const manifest = readManifest(out);
    expect(manifest.format).toBe("peftc.artifacts");
    expect(manifest.baseModel.file).toBe("llama-tiny.onnx");
    expect(manifest.baseModel.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.spec.file).toBe("lora.ts");
    expect(manifest.spec.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.parameters.map((parameter) => parameter.name)).toEqual([
      "layers.0.attn.q.lora_A",
      "layers.0.attn.q.lora_B",
      "layers.0.attn.v.lora_A",
      "layers.0.attn.v.lora_B",
      "layers.1.attn.q.lora_A",
      "layers.1.attn.q.lora_B",
      "layers.1.attn.v.lora_A",
      "layers.1.attn.v.lora_B",
    ]);
    expect(manifest.parameters[0]).toEqual({ name: "layers.0.attn.q.lora_A", shape: [4, 64], dtype: "float32", init: "kaiming_uniform(a=sqrt(5)): U(-0.125, 0.125)", module: "layers.0.attn.q", method: "lora", weightDecay: true });
    // GQA: the value projection is 64 → 32 (2 key/value heads of 16).
    expect(manifest.parameters[3]).toMatchObject({ name: "layers.0.attn.v.lora_B", shape: [32, 4], init: "zeros" });
    expect(manifest.graphs.eval).toMatchObject({ file: "eval.onnx", inputs: ["input_ids", "attention_mask", "labels"], outputs: ["loss", "label_count", "logits"] });
    expect(manifest.graphs.eval!.types!.labels).toEqual({ dtype: "int64", shape: ["batch", "sequence"] });
    expect(manifest.graphs.eval!.types!["layers.0.attn.v.lora_B"]).toEqual({ dtype: "float32", shape: [32, 4] });
    expect(manifest.graphs.infer!.types!["past_key_values.0.key"]).toEqual({ dtype: "float32", shape: ["batch", 2, "past_sequence", 16] });
    expect(manifest.loss).toEqual({ loss: "causal_lm" });
    expect(manifest.graphs.grad!.outputs).toEqual(["loss", "label_count", ...manifest.parameters.map((parameter) => `${parameter.name}.grad`)]);
    expect(manifest.graphs.train!.inputs).toEqual(["input_ids", "attention_mask", "labels", "lr", "step"]);
    expect(manifest.optimizer.state).toEqual(manifest.parameters.flatMap((parameter) => [`${parameter.name}.m`, `${parameter.name}.v`]));
    expect(manifest.summary.line).toMatch(/^trainable params: 1,792 \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
    expect(manifest.lora[0]).toMatchObject({ path: "layers.0.attn.q", torchName: "model.layers.0.self_attn.q_proj", layout: "out_in", rank: 4, alpha: 8, scale: 2 });
  });

  test("training graphs use only default-domain ops", () => {
    const out = path.join(makeTempDir(), "out");
    compile({ outDir: out });
    for (const file of ["eval.onnx", "grad.onnx", "train.onnx", "apply.onnx", "infer.onnx"]) {
      const model = loadModel(path.join(out, file));
      const domains = new Set(model.graph.nodes.map((node) => node.domain || "ai.onnx"));
      expect([file, [...domains]]).toEqual([file, ["ai.onnx"]]);
    }
  });

  test("params.safetensors holds the graph's initial tensors", () => {
    const out = path.join(makeTempDir(), "out");
    compile({ outDir: out });
    const params = readSafetensors(path.join(out, "params.safetensors")).tensors;
    const model = loadModel(path.join(out, "eval.onnx"));
    expect([...params.keys()].sort()).toEqual(readManifest(out).parameters.map((parameter) => parameter.name).sort());
    for (const name of params.keys()) {
      expect(model.graph.inputs.map((input) => input.name)).toContain(name);
      expect(model.graph.initializers.has(name)).toBe(false);
    }
  });

  test("same inputs give byte-identical files", () => {
    const first = path.join(makeTempDir(), "a");
    const second = path.join(makeTempDir(), "b");
    compile({ outDir: first });
    compile({ outDir: second });
    for (const file of fs.readdirSync(first)) {
      expect(fs.readFileSync(path.join(second, file)).equals(fs.readFileSync(path.join(first, file)))).toBe(true);
    }
  });

  test("eval.onnx runs with params.safetensors fed", async () => {
    const out = path.join(makeTempDir(), "out");
    compile({ outDir: out });
    const session = await openSession(path.join(out, "eval.onnx"));
    const base = await openSession(LLAMA);
    const initial = (await session.run({ ...FEEDS, ...LABELS, ...paramFeeds(out) })).logits.data as Float32Array;
    expect([...initial]).toEqual([...((await base.run(FEEDS)).logits.data as Float32Array)]);
    const b = new ort.Tensor("float32", Float32Array.from({ length: 64 * 4 }, (_, i) => ((i % 7) - 3) * 0.05), [64, 4]);
    const swapped = (await session.run({ ...FEEDS, ...LABELS, ...paramFeeds(out, { "layers.0.attn.q.lora_B": b }) })).logits.data as Float32Array;
    expect(swapped.some((value, i) => Math.abs(value - initial[i]) > 1e-4)).toBe(true);
    await session.release();
    await base.release();
  });

  test("external data is hard-linked, not copied", async () => {
    const baseDir = makeTempDir();
    const modelFile = path.join(baseDir, "model.onnx");
    saveModel(loadModel(LLAMA), modelFile, { externalDataThreshold: 1024, externalDataLocation: "model.onnx.data" });
    const out = path.join(makeTempDir(), "out");
    const result = compile({ modelFile, outDir: out });
    expect(result.manifest.externalData).toEqual([{ location: "model.onnx.data", placement: "hardlink" }]);
    expect(result.manifest.baseModel.externalData).toEqual([{ location: "model.onnx.data", bytes: fs.statSync(path.join(baseDir, "model.onnx.data")).size }]);
    expect(fs.statSync(path.join(out, "model.onnx.data")).ino).toBe(fs.statSync(path.join(baseDir, "model.onnx.data")).ino);
    // The graph file grows only by the LoRA nodes and constants, never by the weights.
    expect(fs.statSync(path.join(out, "eval.onnx")).size).toBeLessThan(fs.statSync(modelFile).size + 8 * 1024);
    const session = await openSession(path.join(out, "eval.onnx"));
    const base = await openSession(LLAMA);
    expect([...((await session.run({ ...FEEDS, ...LABELS, ...paramFeeds(out) })).logits.data as Float32Array)]).toEqual([...((await base.run(FEEDS)).logits.data as Float32Array)]);
    await session.release();
    await base.release();
  });

  test("a spec error leaves no folder behind", () => {
    const parent = makeTempDir();
    const out = path.join(parent, "out");
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.k"), rank: 40 })] });
    expect(() => compile({ outDir: out, spec })).toThrow(/at most 32/);
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  test("an earlier artifact folder is replaced", () => {
    const out = path.join(makeTempDir(), "out");
    compile({ outDir: out });
    compile({ outDir: out, spec: defineSpec({ methods: [lora({ targets: select.role("attn.o") })] }) });
    expect(readManifest(out).parameters[0].name).toBe("layers.0.attn.o.lora_A");
  });

  test("earlier artifacts with external data are replaced", () => {
    const baseDir = makeTempDir();
    const modelFile = path.join(baseDir, "model.onnx");
    saveModel(loadModel(LLAMA), modelFile, { externalDataThreshold: 1024, externalDataLocation: "model.onnx.data" });
    const out = path.join(makeTempDir(), "out");
    compile({ modelFile, outDir: out });
    compile({ modelFile, outDir: out, spec: defineSpec({ methods: [lora({ targets: select.role("attn.o") })] }) });
    expect(readManifest(out).parameters[0].name).toBe("layers.0.attn.o.lora_A");
  });

  test("user files in an earlier artifact folder are kept", () => {
    const out = path.join(makeTempDir(), "out");
    compile({ outDir: out });
    fs.writeFileSync(path.join(out, "notes.txt"), "mine");
    fs.mkdirSync(path.join(out, "checkpoints"));
    fs.writeFileSync(path.join(out, "checkpoints", "step-100.safetensors"), "weights");
    const before = fs.readFileSync(path.join(out, "manifest.json"));

    let error: unknown;
    try {
      compile({ outDir: out, spec: defineSpec({ methods: [lora({ targets: select.role("attn.o") })] }) });
    } catch (caught) {
      error = caught;
    }
    expect((error as { code?: string }).code).toBe("E_OUTPUT_PATH");
    expect((error as Error).message).toContain(`(${path.join("checkpoints", "step-100.safetensors")}, notes.txt)`);
    expect((error as Error).message).toContain("Move those files elsewhere, or choose a new --out folder.");
    expect(fs.readFileSync(path.join(out, "notes.txt"), "utf8")).toBe("mine");
    expect(fs.readFileSync(path.join(out, "manifest.json")).equals(before)).toBe(true);
  });

  test("many user files are named up to five", () => {
    const out = path.join(makeTempDir(), "out");
    compile({ outDir: out });
    for (let i = 0; i < 7; i++) fs.writeFileSync(path.join(out, `note-${i}.txt`), "mine");
    expect(() => compile({ outDir: out })).toThrow("(note-0.txt, note-1.txt, note-2.txt, note-3.txt, note-4.txt, and 2 more)");
  });

  test("graphs carry the peftc.artifact mark", () => {
    const out = path.join(makeTempDir(), "out");
    compile({ outDir: out });
    for (const kind of ["eval", "grad", "train", "apply"]) {
      const entries = loadModel(path.join(out, `${kind}.onnx`)).metadataProps.filter((entry) => entry.key === "peftc.artifact");
      expect(entries).toEqual([{ key: "peftc.artifact", value: kind }]);
    }
  });

  test("a peftc graph is rejected as a base model", () => {
    const first = path.join(makeTempDir(), "first");
    compile({ outDir: first });
    const second = path.join(makeTempDir(), "second");
    let error: unknown;
    try {
      compile({ modelFile: path.join(first, "eval.onnx"), outDir: second });
    } catch (caught) {
      error = caught;
    }
    expect((error as { code?: string }).code).toBe("E_ONNX_INVALID");
    expect((error as Error).message).toContain("is the eval graph of an earlier peftc compile");
    expect((error as Error).message).toContain("compile the original base model instead");
    expect(fs.existsSync(second)).toBe(false);
  });

  test("a folder of other files is kept", () => {
    const out = makeTempDir();
    fs.writeFileSync(path.join(out, "notes.txt"), "mine");
    expect(() => compile({ outDir: out })).toThrow(/other files/);
    expect(fs.readdirSync(out)).toEqual(["notes.txt"]);
  });

  test("nothing to compile is an error", () => {
    expect(() => compile({ outDir: path.join(makeTempDir(), "out"), spec: null })).toThrow(/nothing to compile/);
  });
});
