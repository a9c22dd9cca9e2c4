import * as path from "node:path";
import { loadModel, saveModel } from "../../../compiler/ir/io";
import { ModelSummary } from "../../../compiler/inspect/summary";
import { Model } from "../../../compiler/ir/model";
import { tensorType } from "../../../compiler/ir/types";
import { Tensor } from "../../../compiler/onnx/tensor";
import { runCli } from "../../../runtime/cli/main";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { DataType, attr, constant, input, int64s, newModel, op, out } from "../../compiler/ir/infer/build";

/** `peftc inspect` output that is inconsistent between text and JSON, incomplete, or a crash. */

afterAll(removeTempDirs);

async function inspect(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(["inspect", ...argv], { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { status, stdout, stderr };
}

function save(model: Model): string {
  const file = path.join(makeTempDir("peftc-breaker2-"), "model.onnx");
  saveModel(model, file);
  return file;
}

/** Five Transpose nodes whose perm repeats an axis, so each one is a shape inference failure. */
function fiveFailures(): Model {
  const model = newModel({ "": 17 });
  const x = input(model.graph, "x", DataType.FLOAT, [2, 3]);
  for (let i = 0; i < 5; i++) {
    const node = op(model.graph, "Transpose", [x], { attributes: [attr.ints("perm", [0, 0])] });
    model.graph.addOutput(out(node));
  }
  return model;
}

describe("inspect failures", () => {
  it("text counts every failure", async () => {
    const file = save(fiveFailures());

    const json = JSON.parse((await inspect(file, "--json")).stdout) as ModelSummary;
    const text = (await inspect(file)).stdout;

    expect(json.shapeInference.failures).toHaveLength(5);
    // The text shows the first three failures, so it should print the count left out, as it does for warnings.
    const lastShown = text.includes('"Transpose_4"');
    const leftOutNoted = /2 more/.test(text);
    expect(lastShown || leftOutNoted).toBe(true);
  });

  it("failure names node once", async () => {
    const file = save(fiveFailures());

    const json = JSON.parse((await inspect(file, "--json")).stdout) as ModelSummary;

    const first = json.shapeInference.failures[0];
    expect(first.split('node "Transpose"')).toHaveLength(2);
  });

  it("negative expand no internal error", async () => {
    const model = newModel({ "": 17 });
    const expanded = op(model.graph, "Expand", [input(model.graph, "x", DataType.FLOAT, [1]), int64s(model.graph, "target", [-1])]);
    model.graph.addOutput(out(expanded));
    const file = save(model);

    const result = await inspect(file);

    expect(result.stderr).not.toContain("internal error");
    expect(result.status).not.toBe(1);
  });
});

describe("inspect shapes", () => {
  it("resize output shape has no NaN", async () => {
    const model = newModel({ "": 13 });
    const g = model.graph;
    const x = input(g, "x", DataType.FLOAT, ["batch", 3, "height", "width"]);
    const resized = op(g, "Resize", [x, constant(g, "roi", DataType.FLOAT, [0], []), constant(g, "scales", DataType.FLOAT, [0], []), input(g, "sizes", DataType.INT64, [4])]);
    g.addOutput(out(resized));
    const file = save(model);

    const text = (await inspect(file)).stdout;
    const json = JSON.parse((await inspect(file, "--json")).stdout) as ModelSummary;

    // JSON.stringify writes NaN as null (unknown), so the text must not print a different value.
    expect(text).not.toContain("NaN");
    expect(json.outputs[0].shape).toHaveLength(4);
  });
});

describe("inspect inputs", () => {
  it("lists inputs with initializer defaults", async () => {
    // A LoRA slot laid out like onnxruntime's LoRA test model, which is a graph input with an empty initializer default.
    const model = newModel({ "": 17 });
    const g = model.graph;
    const x = input(g, "x", DataType.FLOAT, [4, 4]);
    const adapter = g.addInitializer(Tensor.fromArray("lora_a", DataType.FLOAT, [4, 0], new Float32Array(0)), true);
    adapter.type = tensorType(DataType.FLOAT, [4, "rank"]);
    g.inputs.push(adapter);
    g.addOutput(out(op(g, "MatMul", [x, adapter])));
    const file = save(model);
    const reloaded = loadModel(file).graph.inputs.map((value) => value.name);

    const json = JSON.parse((await inspect(file, "--json")).stdout) as ModelSummary;

    expect(reloaded).toEqual(["x", "lora_a"]);
    expect(json.inputs.map((value) => value.name)).toContain("lora_a");
  });
});
