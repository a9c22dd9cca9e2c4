// saveModel cases where data could be lost or changed, or where the written
// model could be one onnxruntime rejects. Each test states the expected result.
import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { isPeftcError } from "../../../compiler/errors";
import { attr } from "../../../compiler/ir/attribute";
import { Graph } from "../../../compiler/ir/graph";
import { loadModel, saveModel } from "../../../compiler/ir/io";
import { Model } from "../../../compiler/ir/model";
import { modelToProto } from "../../../compiler/ir/to-proto";
import { tensorType } from "../../../compiler/ir/types";
import { DataType } from "../../../compiler/onnx/dtype";
import { encodeModelProto } from "../../../compiler/onnx/model-file";
import { Tensor } from "../../../compiler/onnx/tensor";
import { openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { tinyLinearModel } from "../../helpers/tiny-model";

afterAll(removeTempDirs);

const X = () => new ort.Tensor("float32", Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [2, 4]);

function floats(model: Model, name: string): number[] {
  return Array.from(model.graph.initializers.get(name)!.initializer!.data() as Float32Array);
}

/** Builds the tiny linear model with a second output z = Identity(Z), where Z is 16 floats (64 bytes). */
function modelWithZ(): Model {
  const model = tinyLinearModel();
  const z = model.graph.addInitializer(Tensor.fromArray("Z", DataType.FLOAT, [16], Float32Array.from({ length: 16 }, (_, i) => 100 + i)), true);
  const identity = model.graph.addNode({ opType: "Identity", name: "z_identity", inputs: [z], outputs: ["z"] });
  identity.outputs[0].type = tensorType(DataType.FLOAT, [16]);
  model.graph.addOutput(identity.outputs[0]);
  return model;
}

/** Builds the tiny linear model with an If(cond) whose branches each contain a 16-float initializer. */
function modelWithSubgraphWeights(): Model {
  const model = tinyLinearModel();
  const graph = model.graph;
  const cond = graph.addInput("cond", tensorType(DataType.BOOL, []));
  const ifNode = graph.addNode({ opType: "If", name: "branch", inputs: [cond], outputs: ["branch_out"] });
  for (const [name, fill] of [["then_branch", 1], ["else_branch", 2]] as const) {
    const branch = new Graph(graph.names, name, ifNode);
    const constant = branch.addInitializer(Tensor.fromArray(`${name}_c`, DataType.FLOAT, [16], new Float32Array(16).fill(fill)));
    const identity = branch.addNode({ opType: "Identity", inputs: [constant], outputs: [`${name}_out`] });
    identity.outputs[0].type = tensorType(DataType.FLOAT, [16]);
    branch.addOutput(identity.outputs[0]);
    ifNode.setAttribute(attr.graph(name, branch));
  }
  ifNode.outputs[0].type = tensorType(DataType.FLOAT, [16]);
  graph.addOutput(ifNode.outputs[0]);
  return model;
}

describe("saveModel over its own path", () => {
  it("keeps in-memory weights correct", () => {
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    saveModel(modelWithZ(), file, { externalDataThreshold: 60 }); // only Z is external, at offset 0
    const model = loadModel(file);
    const before = floats(model, "Z");

    saveModel(model, file, { externalDataThreshold: 1 }); // W now takes offset 0 and Z moves to 128
    expect(floats(loadModel(file), "Z")).toEqual(before);
    // A stale reference to offset 0 of the replaced data file would read W's bytes as Z.
    expect(floats(model, "Z")).toEqual(before);
  });

  it("keeps weights on a second save", () => {
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    saveModel(modelWithZ(), file, { externalDataThreshold: 60 });
    const model = loadModel(file);
    const before = floats(model, "Z");
    saveModel(model, file, { externalDataThreshold: 1 });

    const copy = path.join(makeTempDir("peftc-breaker-"), "copy.onnx");
    saveModel(model, copy, { existingExternalData: "inline" });
    expect(floats(loadModel(copy), "Z")).toEqual(before);
  });
});

describe("saveModel keeping external data", () => {
  it("leaves another model's data file alone", () => {
    const source = makeTempDir("peftc-breaker-");
    saveModel(tinyLinearModel(), path.join(source, "a.onnx"), { externalDataThreshold: 40, externalDataLocation: "weights.bin" });
    const target = makeTempDir("peftc-breaker-");
    const sevens = new Float32Array(12).fill(7);
    saveModel(tinyLinearModel(sevens), path.join(target, "b.onnx"), { externalDataThreshold: 40, externalDataLocation: "weights.bin" });

    // Placing a's weights.bin next to the copy would replace b's file of the same name, so the save is refused.
    let code = "no error";
    try {
      saveModel(loadModel(path.join(source, "a.onnx")), path.join(target, "a-copy.onnx"));
    } catch (error) {
      code = isPeftcError(error) ? error.code : String(error);
    }
    expect(code).toBe("E_EXTERNAL_DATA_PATH");
    expect(floats(loadModel(path.join(target, "b.onnx")), "W")).toEqual(Array.from(sevens));
    expect(fs.existsSync(path.join(target, "a-copy.onnx"))).toBe(false);
  });

  it("writes subgraph weights onnxruntime accepts", async () => {
    const source = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    saveModel(modelWithSubgraphWeights(), source, { externalDataThreshold: 16 });
    await expect(openSession(source)).resolves.toBeDefined();

    // onnxruntime 1.31 rejects subgraph tensors whose data file has more than one
    // hard link ("potential hardlink attack"), in the copy and in the source.
    const copy = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    saveModel(loadModel(source), copy);
    await expect(openSession(copy)).resolves.toBeDefined();
    await expect(openSession(source)).resolves.toBeDefined();
  });

  it("reloads a backslash location saved elsewhere", () => {
    // As in onnxruntime on Linux, the backslash is part of one file name: the data is not in sub/w.data.
    const source = makeTempDir("peftc-breaker-");
    const proto = modelToProto(tinyLinearModel());
    const weight = proto.graph!.initializer!.find((tensor) => tensor.name === "W")!;
    weight.rawData = undefined;
    weight.dataLocation = 1;
    weight.externalData = [{ key: "location", value: "sub\\w.data" }];
    fs.writeFileSync(path.join(source, "model.onnx"), encodeModelProto(proto));
    const values = Array.from({ length: 12 }, (_, i) => (i - 6) / 4);
    fs.writeFileSync(path.join(source, "sub\\w.data"), Buffer.from(new Float32Array(values).buffer));

    const target = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    saveModel(loadModel(path.join(source, "model.onnx")), target);
    expect(floats(loadModel(target), "W")).toEqual(values);
  });
});

describe("saveModel external data threshold", () => {
  it("keeps Range inputs readable at 0", async () => {
    // onnxruntime cannot infer shapes from external tensors: "Cannot parse data from external tensors".
    const model = new Model({ irVersion: 8, opsetImports: new Map([["", 17]]), graphName: "range" });
    const graph = model.graph;
    const scalar = (name: string, value: bigint) => graph.addInitializer(Tensor.fromArray(name, DataType.INT64, [], BigInt64Array.of(value)), true);
    const range = graph.addNode({ opType: "Range", inputs: [scalar("start", 0n), scalar("limit", 5n), scalar("delta", 1n)], outputs: ["steps"] });
    range.outputs[0].type = tensorType(DataType.INT64, [5]);
    graph.addOutput(range.outputs[0]);
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    saveModel(model, file, { externalDataThreshold: 0 });
    await expect(openSession(file)).resolves.toBeDefined();
  });

  it("writes empty tensors onnxruntime reads at 0", async () => {
    // onnxruntime reports "unexpected end of file" for an empty tensor whose offset equals the file size.
    const model = tinyLinearModel();
    const graph = model.graph;
    const empty = graph.addInitializer(Tensor.fromArray("empty", DataType.FLOAT, [0, 4], new Float32Array(0)), true);
    const concat = graph.addNode({ opType: "Concat", inputs: [graph.getLocal("x")!, empty], outputs: ["joined"], attributes: [attr.int("axis", 0)] });
    concat.outputs[0].type = tensorType(DataType.FLOAT, ["batch", 4]);
    graph.addOutput(concat.outputs[0]);
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    saveModel(model, file, { externalDataThreshold: 0 });
    const session = await openSession(file);
    const outputs = await session.run({ x: X() });
    expect(Array.from(outputs.joined.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe("saveModel externalDataLocation", () => {
  it("rejects a threshold that is not a number", () => {
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    expect(() => saveModel(tinyLinearModel(), file, { externalDataThreshold: Number.NaN })).toThrow(/not a byte count/);
    expect(fs.existsSync(file)).toBe(false);
  });

  it("rejects a location outside the folder", () => {
    const folder = makeTempDir("peftc-breaker-");
    const file = path.join(folder, "inner", "model.onnx");
    let code = "no error";
    try {
      saveModel(tinyLinearModel(), file, { externalDataThreshold: 1, externalDataLocation: "../outside.data" });
    } catch (error) {
      code = isPeftcError(error) ? error.code : String(error);
    }
    expect(code).toBe("E_EXTERNAL_DATA_PATH");
    expect(fs.existsSync(path.join(folder, "outside.data"))).toBe(false);
  });

  it("rejects the model's own file name", () => {
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    saveModel(tinyLinearModel(), file);
    const before = fs.readFileSync(file);
    let code = "no error";
    try {
      saveModel(tinyLinearModel(), file, { externalDataThreshold: 1, externalDataLocation: "model.onnx" });
    } catch (error) {
      code = isPeftcError(error) ? error.code : String(error);
    }
    expect(code).toBe("E_EXTERNAL_DATA_PATH");
    // A failed save must keep the existing model, not leave one whose weights point into itself.
    expect(fs.readFileSync(file)).toEqual(before);
  });
});
