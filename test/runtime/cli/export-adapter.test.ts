import * as fs from "node:fs";
import * as path from "node:path";
import type { Manifest } from "../../../compiler/emit/manifest";
import { readPeftAdapter } from "../../../compiler/emit/peft-adapter";
import { writeSafetensors } from "../../../compiler/emit/safetensors";
import type { LoraRecord } from "../../../compiler/methods/parameters";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { runPeftc } from "../../helpers/cli";

afterAll(removeTempDirs);

const run = runPeftc;

const MODULES = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"];

function loraRecord(torchName: string): LoraRecord {
  const canonical = torchName.replace("model.layers.", "layers.").replace("self_attn.", "attn.").replace("_proj", "");
  return {
    path: canonical,
    module: canonical,
    torchName,
    part: null,
    layout: "out_in",
    weight: `${torchName}.weight`,
    inFeatures: 3,
    outFeatures: 2,
    rank: 2,
    alpha: 8,
    rsLora: false,
    scale: 4,
    dropout: 0.1,
    a: `${canonical}.lora_A`,
    b: `${canonical}.lora_B`,
    qkv: null,
    gate: null,
  };
}

/** Writes manifest.json and params.safetensors, as peftc compile lays them out, and returns the folder. */
function writeArtifacts(records: LoraRecord[], options: { extraParameters?: Manifest["parameters"]; specValue?: unknown } = {}): string {
  const dir = makeTempDir();
  const parameters: Manifest["parameters"] = records.flatMap((record) => [
    { name: record.a, shape: [record.rank, record.inFeatures], dtype: "float32", init: "kaiming_uniform(a=sqrt(5))", module: record.module, method: "lora" as const, weightDecay: true },
    { name: record.b, shape: [record.outFeatures, record.rank], dtype: "float32", init: "zeros", module: record.module, method: "lora" as const, weightDecay: true },
  ]);
  parameters.push(...(options.extraParameters ?? []));
  const manifest: Manifest = {
    format: "peftc.artifacts",
    version: 1,
    peftcVersion: "0.1.0",
    baseModel: { file: "model.onnx", sha256: "0".repeat(64), externalData: [] },
    spec: { file: "spec.ts", sha256: "1".repeat(64), value: options.specValue ?? { methods: [{ method: "lora", rank: 2, alpha: 8, dropout: 0.1, rsLora: false, init: "kaiming", bias: "none" }] } },
    adapter: null,
    parameters,
    lora: records,
    summary: { trainable: 0, all: 0, percent: 0, line: "" },
    graphs: Object.fromEntries(["eval", "grad", "train", "apply"].map((kind) => [kind, { file: `${kind}.onnx`, inputs: [], outputs: [] }])) as unknown as Manifest["graphs"],
    optimizer: { state: [], settings: {} },
    loss: null,
    externalData: [],
    merged: [],
    warnings: [],
  };
  fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
  writeSafetensors(path.join(dir, "params.safetensors"), paramsFor(records, 1));
  return dir;
}

function paramsFor(records: LoraRecord[], factor: number): Map<string, Tensor> {
  const tensors = new Map<string, Tensor>();
  records.forEach((record, i) => {
    tensors.set(record.a, Tensor.fromArray(record.a, DataType.FLOAT, [2, 3], Float32Array.from({ length: 6 }, (_, j) => factor * (i + j / 8))));
    tensors.set(record.b, Tensor.fromArray(record.b, DataType.FLOAT, [2, 2], Float32Array.from({ length: 4 }, (_, j) => factor * (j - i))));
  });
  return tensors;
}

describe("peftc export-adapter", () => {
  it("writes a PEFT adapter from params.safetensors", async () => {
    const records = MODULES.map(loraRecord);
    const artifacts = writeArtifacts(records);
    const out = path.join(makeTempDir(), "adapter");

    const result = await run("export-adapter", artifacts, "--out", out, "--base-model", "org/tiny");
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("2 LoRA modules");

    const adapter = readPeftAdapter(out);
    expect([...adapter.modules.keys()]).toEqual(MODULES);
    expect(adapter.config.base_model_name_or_path).toBe("org/tiny");
    expect(adapter.config.task_type).toBe("CAUSAL_LM");
    expect(adapter.config.lora_dropout).toBe(0.1);
    const expected = paramsFor(records, 1);
    for (const record of records) {
      const module = adapter.modules.get(record.torchName)!;
      expect([record.torchName, module.rank, module.alpha, module.scale]).toEqual([record.torchName, 2, 8, 4]);
      expect(module.a.numbers()).toEqual(expected.get(record.a)!.numbers());
      expect(module.b.numbers()).toEqual(expected.get(record.b)!.numbers());
    }
  });

  it("warns when the model kept no PyTorch module names", async () => {
    const records = MODULES.map(loraRecord).map((record) => ({ ...record, torchName: record.module }));
    const out = path.join(makeTempDir(), "adapter");
    const result = await run("export-adapter", writeArtifacts(records), "--out", out);
    expect(result.status).toBe(0);
    expect(result.stderr).toContain("kept no PyTorch module names for layers.0.attn.q, layers.0.attn.v, so the adapter names them by peftc's paths");
  });

  it("reads trained values from --params", async () => {
    const records = MODULES.map(loraRecord);
    const artifacts = writeArtifacts(records);
    const checkpoint = path.join(makeTempDir(), "step-100.safetensors");
    writeSafetensors(checkpoint, paramsFor(records, 3));
    const out = makeTempDir();

    const result = await run("export-adapter", artifacts, "--out", out, "--params", checkpoint, "--task-type", "SEQ_CLS");
    expect(result.status).toBe(0);
    const adapter = readPeftAdapter(out);
    expect(adapter.config.task_type).toBe("SEQ_CLS");
    expect(adapter.modules.get(MODULES[1])!.b.numbers()).toEqual([-3, 0, 3, 6]);
  });

  it("rejects trainable tensors that are not LoRA", async () => {
    const records = MODULES.map(loraRecord);
    const extra = [
      { name: "model.layers.0.self_attn.q_proj.bias", shape: [2], dtype: "float32", init: "base", module: "layers.0.attn.q", method: "bias" as const, weightDecay: false },
      { name: "lm_head.weight", shape: [2, 3], dtype: "float32", init: "base", module: "head", method: "train" as const, weightDecay: true },
    ];
    const artifacts = writeArtifacts(records, { extraParameters: extra });
    const out = path.join(makeTempDir(), "adapter");
    const result = await run("export-adapter", artifacts, "--out", out);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("2 trainable tensors that are not LoRA weights (model.layers.0.self_attn.q_proj.bias, lm_head.weight)");
    expect(result.stderr).toContain("Pass --lora-only");
    expect(fs.existsSync(out)).toBe(false);
  });

  it("exports LoRA alone with --lora-only", async () => {
    const records = MODULES.map(loraRecord);
    const extra = [{ name: "model.layers.0.self_attn.q_proj.bias", shape: [2], dtype: "float32", init: "base", module: "layers.0.attn.q", method: "bias" as const, weightDecay: false }];
    const specValue = { methods: [{ method: "lora", rank: 2, alpha: 8, dropout: 0.1, rsLora: false, init: "kaiming", bias: "lora_only" }] };
    const artifacts = writeArtifacts(records, { extraParameters: extra, specValue });
    const out = makeTempDir();
    const result = await run("export-adapter", artifacts, "--out", out, "--lora-only");
    expect(result.status).toBe(0);
    expect(result.stderr).toBe(
      "peftc: warning: --lora-only leaves out 1 trainable tensor that is not a LoRA weight (model.layers.0.self_attn.q_proj.bias), so PEFT will use the base model's values for them.\n",
    );
    const adapter = readPeftAdapter(out);
    expect([...adapter.modules.keys()]).toEqual(MODULES);
    // The adapter contains no bias tensors, so its config claims none.
    expect(adapter.config.bias).toBe("none");
  });

  it("rejects an unknown --task-type", async () => {
    const artifacts = writeArtifacts(MODULES.map(loraRecord));
    const result = await run("export-adapter", artifacts, "--out", makeTempDir(), "--task-type", "BANANA");
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('--task-type "BANANA" is not a PEFT task type. Use one of CAUSAL_LM, SEQ_CLS, SEQ_2_SEQ_LM, TOKEN_CLS, QUESTION_ANS, FEATURE_EXTRACTION.');
  });

  it("rejects parameters that are not finite", async () => {
    const records = MODULES.map(loraRecord);
    const artifacts = writeArtifacts(records);
    const params = paramsFor(records, 1);
    params.set(records[1].b, Tensor.fromArray(records[1].b, DataType.FLOAT, [2, 2], Float32Array.from([0, NaN, 1, 2])));
    const checkpoint = path.join(makeTempDir(), "diverged.safetensors");
    writeSafetensors(checkpoint, params);
    const out = path.join(makeTempDir(), "adapter");
    const result = await run("export-adapter", artifacts, "--out", out, "--params", checkpoint);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("layers.0.attn.v.lora_B (LoRA of layers.0.attn.v) contains NaN at index 1");
    expect(fs.existsSync(out)).toBe(false);
  });

  it("rejects a manifest without LoRA branches", async () => {
    const artifacts = writeArtifacts([]);
    const result = await run("export-adapter", artifacts, "--out", makeTempDir());
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("lists no LoRA branches");
  });

  it("rejects a folder without manifest.json", async () => {
    const empty = makeTempDir();
    const result = await run("export-adapter", empty, "--out", makeTempDir());
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(path.join(empty, "manifest.json"));
  });

  it("rejects a manifest of another format", async () => {
    const dir = makeTempDir();
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify({ format: "other" }));
    const result = await run("export-adapter", dir, "--out", makeTempDir());
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("not a peftc manifest");
  });

  it("rejects a missing parameter file", async () => {
    const artifacts = writeArtifacts(MODULES.map(loraRecord));
    const missing = path.join(artifacts, "nope.safetensors");
    const result = await run("export-adapter", artifacts, "--out", makeTempDir(), "--params", missing);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(missing);
  });

  it("rejects a parameter file without the LoRA tensors", async () => {
    const artifacts = writeArtifacts(MODULES.map(loraRecord));
    const other = path.join(makeTempDir(), "other.safetensors");
    writeSafetensors(other, new Map([["x", Tensor.fromArray("x", DataType.FLOAT, [1], Float32Array.from([1]))]]));
    const result = await run("export-adapter", artifacts, "--out", makeTempDir(), "--params", other);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("layers.0.attn.q.lora_A");
  });

  it("requires --out", async () => {
    const result = await run("export-adapter", makeTempDir());
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("--out");
  });

  it("describes its options in --help", async () => {
    const result = await run("export-adapter", "--help");
    expect(result.status).toBe(0);
    for (const flag of ["--out <dir>", "--params <file>", "--task-type <type>", "--base-model <name>", "params.safetensors", "CAUSAL_LM"]) {
      expect(result.stdout).toContain(flag);
    }
  });
});
