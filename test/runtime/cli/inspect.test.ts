import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { saveModel } from "../../../compiler/ir/io";
import { ModelSummary } from "../../../compiler/inspect/summary";
import { CORPUS_DIR, describeCorpus } from "../../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { tinyLinearModel } from "../../helpers/tiny-model";
import { runPeftc } from "../../helpers/cli";

afterAll(removeTempDirs);

const run = runPeftc;

describe("peftc inspect", () => {
  it("reports a model with external data as JSON", async () => {
    const dir = makeTempDir();
    const file = path.join(dir, "tiny.onnx");
    saveModel(tinyLinearModel(), file, { externalDataThreshold: 16 });
    const result = await run("inspect", file, "--json");
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout) as ModelSummary;
    expect(summary.irVersion).toBe(8);
    expect(summary.opsets).toEqual([{ domain: "ai.onnx", version: 17 }]);
    expect(summary.inputs).toEqual([{ name: "x", dtype: "FLOAT", shape: ["batch", 4] }]);
    expect(summary.outputs).toEqual([{ name: "y", dtype: "FLOAT", shape: ["batch", 3] }]);
    expect(summary.ops).toEqual([
      { op: "Add", count: 1 },
      { op: "MatMul", count: 1 },
      { op: "Relu", count: 1 },
    ]);
    expect(summary.parameters.count).toBe(15);
    expect(summary.parameters.bytes).toBe(60);
    expect(summary.externalData).toEqual([{ location: "tiny.onnx.data", path: fs.realpathSync(`${file}.data`), tensors: 1, bytes: 48, exists: true }]);
    expect(summary.shapeInference).toEqual({ typed: 3, incomplete: 0, untyped: 0, unsupportedOps: [], failures: [], conflicts: 0 });
  });

  it("prints the same facts as text", async () => {
    const dir = makeTempDir();
    const file = path.join(dir, "tiny.onnx");
    saveModel(tinyLinearModel(), file);
    const result = await run("inspect", file);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("ir version  8");
    expect(result.stdout).toMatch(/x\s+FLOAT\s+\[batch, 4\]/);
    expect(result.stdout).toContain("parameters  15 ");
    expect(result.stdout).toContain("external    none");
  });

  it("exits 2 with one paragraph naming a bad file", async () => {
    const dir = makeTempDir();
    const file = path.join(dir, "garbage.onnx");
    fs.writeFileSync(file, Buffer.from("definitely not protobuf \u0000\u00ff\u00fe"));
    const result = await run("inspect", file);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(file);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("exits 2 on a missing file and on bad arguments", async () => {
    expect((await run("inspect", "/nonexistent.onnx")).status).toBe(2);
    expect((await run("inspect")).status).toBe(2);
    expect((await run("inspect", "--no-such-flag", "x.onnx")).status).toBe(2);
    expect((await run("no-such-command")).status).toBe(2);
  });

  it("prints help with exit status 0", async () => {
    const result = await run("inspect", "--help");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("--graph-only");
  });

  it("runs as the installed command", () => {
    const dir = makeTempDir();
    const file = path.join(dir, "tiny.onnx");
    saveModel(tinyLinearModel(), file);
    const bin = path.resolve(__dirname, "../../../bin/peftc.js");
    const result = spawnSync(process.execPath, [bin, "inspect", file, "--json"], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect((JSON.parse(result.stdout) as ModelSummary).graph.nodes).toBe(3);
  });
});

describeCorpus("peftc inspect on the corpus", () => {
  it("counts the parameters the corpus README lists", async () => {
    const cases: [string, number][] = [
      ["torch-gpt2tiny-op17/model.onnx", 141_056],
      ["genai-gpt2-past-fused-fp32/past.onnx", 142_112],
      ["gpt2-beamsearch-subgraph/tiny_gpt2_beamsearch.onnx", 142_112],
      ["bert-toy-pt11/bert_toy_optimized.onnx", 56_414],
    ];
    for (const [relative, expected] of cases) {
      const result = await run("inspect", path.join(CORPUS_DIR, relative), "--json");
      expect([relative, (JSON.parse(result.stdout) as ModelSummary).parameters.count]).toEqual([relative, expected]);
    }
  });

  it("lists onnxruntime's LoRA adapter slots as optional inputs", async () => {
    const result = await run("inspect", path.join(CORPUS_DIR, "lora-ref-ort/two_params_lora_model.onnx"), "--json");
    const inputs = (JSON.parse(result.stdout) as ModelSummary).inputs;
    expect(inputs.map((input) => [input.name, input.hasDefault ?? false])).toEqual([
      ["input_x", false],
      ["lora_param_a", true],
      ["lora_param_b", true],
    ]);
  });

  it("names the operators shape inference has no rule for", async () => {
    const file = path.join(CORPUS_DIR, "bloom-3layer-training-ort/3layer_bloom_optimized_training.onnx");
    const result = await run("inspect", file, "--json");
    const unsupported = (JSON.parse(result.stdout) as ModelSummary).shapeInference.unsupportedOps;
    expect(unsupported).toContain("org.pytorch.aten::ATen");
    expect(unsupported).toContain("com.microsoft::SoftmaxGrad_13");
    const text = await run("inspect", file);
    expect(text.stdout).toMatch(/no shape rule for: .*org\.pytorch\.aten::ATen/);
  });

  it("inspects a graph whose weights are missing only with --graph-only", async () => {
    const file = path.join(CORPUS_DIR, "phi4-mini-2l-graphonly/microsoft_Phi-4-mini-reasoning-custom-default-f32-cpu.onnx");
    const refused = await run("inspect", file);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain("--graph-only");
    const result = await run("inspect", file, "--json", "--graph-only");
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout) as ModelSummary;
    expect(summary.parameters.count).toBe(1_430_535_320);
    expect(summary.externalData).toHaveLength(1);
    expect(summary.externalData[0].exists).toBe(false);
    expect(summary.graph.functions).toEqual(["aten::aten_scaled_dot_product_attention_default"]);
  });
});
