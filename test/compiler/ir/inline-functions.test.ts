import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { buildBackward } from "../../../compiler/autodiff/backward";
import { AttributeType, attr } from "../../../compiler/ir/attribute";
import { Graph } from "../../../compiler/ir/graph";
import { inferShapes } from "../../../compiler/ir/infer";
import { inlineAllFunctionCalls } from "../../../compiler/ir/inline-functions";
import { saveModel } from "../../../compiler/ir/io";
import { Model, type ModelFunction } from "../../../compiler/ir/model";
import { tensorType } from "../../../compiler/ir/types";
import { DataType } from "../../../compiler/onnx/dtype";
import { openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const LOCAL = "local";

function makeFunction(model: Model, name: string, build: (body: Graph) => void): ModelFunction {
  const body = new Graph(model.names, name);
  build(body);
  const fn: ModelFunction = {
    name,
    domain: LOCAL,
    overload: undefined,
    body,
    attributeNames: ["alpha"],
    attributeProtos: [],
    opsetImports: new Map([["", 17], [LOCAL, 1]]),
    valueInfo: [],
    docString: undefined,
    metadataProps: undefined,
  };
  model.functions.push(fn);
  return fn;
}

/**
 * Builds y = Outer(x, w, alpha=0.1) + Outer(x, w, alpha=0.3), where
 * Outer(a, b) = Inner(a) @ b and Inner(a) = LeakyRelu(a, alpha) with alpha
 * referenced from the caller. Inner's second output, an Identity copy of its
 * input, is never read.
 */
function makeModel(): Model {
  const model = new Model({ irVersion: 9, opsetImports: new Map([["", 17], [LOCAL, 1]]), graphName: "inline" });
  makeFunction(model, "Inner", (body) => {
    const a = body.createValue("a", undefined, true);
    body.inputs.push(a);
    const relu = body.addNode({ opType: "LeakyRelu", name: "relu", inputs: [a], outputs: ["activated"], attributes: [{ name: "alpha", type: AttributeType.FLOAT, value: 0, refAttrName: "alpha" }] });
    body.outputs.push(relu.outputs[0], body.addNode({ opType: "Identity", name: "copy", inputs: [a], outputs: ["copied"] }).outputs[0]);
  });
  makeFunction(model, "Outer", (body) => {
    const a = body.createValue("outer_a", undefined, true);
    const b = body.createValue("outer_b", undefined, true);
    body.inputs.push(a, b);
    const inner = body.addNode({ opType: "Inner", domain: LOCAL, name: "inner", inputs: [a], outputs: ["inner_y", "inner_a"], attributes: [{ name: "alpha", type: AttributeType.FLOAT, value: 0, refAttrName: "alpha" }] });
    const product = body.addNode({ opType: "MatMul", name: "product", inputs: [inner.outputs[0], b], outputs: ["outer_y"] });
    body.outputs.push(product.outputs[0]);
  });

  const graph = model.graph;
  const x = graph.addInput("x", tensorType(DataType.FLOAT, [2, 3]));
  const w = graph.addInput("w", tensorType(DataType.FLOAT, [3, 4]));
  const first = graph.addNode({ opType: "Outer", domain: LOCAL, name: "first", inputs: [x, w], outputs: ["first_y"], attributes: [attr.float("alpha", 0.1)] });
  const second = graph.addNode({ opType: "Outer", domain: LOCAL, name: "second", inputs: [x, w], outputs: ["second_y"], attributes: [attr.float("alpha", 0.3)] });
  const sum = graph.addNode({ opType: "Add", name: "sum", inputs: [first.outputs[0], second.outputs[0]], outputs: ["y"] });
  graph.addOutput(first.outputs[0]);
  graph.addOutput(sum.outputs[0]);
  return model;
}

function makeModelWithInnerOpset(version: number): Model {
  const model = makeModel();
  model.functions.find((fn) => fn.name === "Inner")!.opsetImports.set("", version);
  return model;
}

const X = Float32Array.from([-1, 0.5, -0.25, 2, -3, 1]);
const W = Float32Array.from({ length: 12 }, (_, i) => (i % 5) - 2);

async function run(model: Model, file: string): Promise<Record<string, number[]>> {
  const target = path.join(makeTempDir("peftc-inline-"), file);
  saveModel(model, target);
  const session = await openSession(target);
  const results = await session.run({ x: new ort.Tensor("float32", X, [2, 3]), w: new ort.Tensor("float32", W, [3, 4]) });
  await session.release();
  return Object.fromEntries(Object.entries(results).map(([name, tensor]) => [name, Array.from(tensor.data as Float32Array)]));
}

describe("inlineFunctionCalls", () => {
  test("outputs match onnxruntime before inlining", async () => {
    const before = await run(makeModel(), "before.onnx");
    const model = makeModel();
    inlineAllFunctionCalls(model);
    const after = await run(model, "after.onnx");

    expect(Object.keys(after).sort()).toEqual(["first_y", "y"]);
    expect(after.first_y).toEqual(before.first_y);
    expect(after.y).toEqual(before.y);
  });

  test("nested calls and attribute references are resolved", () => {
    const model = makeModel();
    inlineAllFunctionCalls(model);
    const ops = model.graph.nodes.map((node) => node.qualifiedOpType);

    expect(ops.filter((op) => op.startsWith(`${LOCAL}::`))).toEqual([]);
    const alphas = model.graph.nodes.filter((node) => node.opType === "LeakyRelu").map((node) => node.getFloat("alpha"));
    expect(alphas.map((alpha) => Number(alpha!.toFixed(6)))).toEqual([0.1, 0.3]);
    for (const node of model.graph.nodes) {
      for (const attribute of node.attributes.values()) expect(attribute.refAttrName).toBeUndefined();
    }
  });

  test("body values get unique names per call", () => {
    const model = makeModel();
    inlineAllFunctionCalls(model);
    const names = model.graph.nodes.flatMap((node) => [node.name, ...node.outputs.map((output) => output.name)]);

    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain("first/inner/relu");
    expect(names).toContain("second/inner/relu");
  });

  test("mismatched opset version raises", () => {
    expect(() => inlineAllFunctionCalls(makeModelWithInnerOpset(18))).toThrow(expect.objectContaining({ code: "E_UNKNOWN_DOMAIN" }));
    expect(() => inlineAllFunctionCalls(makeModelWithInnerOpset(18))).toThrow(/imports ai\.onnx version 18, but the model imports version 17/);
  });

  test("backward pass inlines active calls", () => {
    const model = makeModel();
    inferShapes(model);
    const w = model.graph.inputs.find((input) => input.name === "w")!;
    const y = model.graph.outputs.find((output) => output.name === "y")!;
    const grads = buildBackward(model, new Map([[y, y]]), [w]);

    expect(grads.get(w)).toBeDefined();
    expect(model.graph.nodes.some((node) => node.domain === LOCAL)).toBe(false);
  });
});
