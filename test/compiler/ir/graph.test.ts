import { isPeftcError } from "../../../compiler/errors";
import { attr } from "../../../compiler/ir/attribute";
import { cloneModel } from "../../../compiler/ir/clone";
import { eliminateDeadCode } from "../../../compiler/ir/dead-code";
import { Graph } from "../../../compiler/ir/graph";
import { loadModelFromBuffer } from "../../../compiler/ir/io";
import { topologicalOrder, topologicalSort } from "../../../compiler/ir/topological-sort";
import { modelToProto } from "../../../compiler/ir/to-proto";
import { validateModel } from "../../../compiler/ir/validate";
import { DataType } from "../../../compiler/onnx/dtype";
import { encodeModelProto } from "../../../compiler/onnx/model-file";
import { Tensor } from "../../../compiler/onnx/tensor";
import { tensorType } from "../../../compiler/ir/types";
import { tinyLinearModel } from "../../helpers/tiny-model";

function node(graph: Graph, name: string) {
  const found = graph.nodes.find((each) => each.name === name);
  if (!found) throw new Error(`no node ${name}`);
  return found;
}

describe("graph IR", () => {
  it("links producers and uses on load", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const matmul = node(graph, "/linear/MatMul");
    const xw = graph.getLocal("xw")!;
    expect(xw.producer).toBe(matmul);
    expect(xw.producerIndex).toBe(0);
    expect(xw.uses).toEqual([{ node: node(graph, "/linear/Add"), index: 0 }]);
    expect(graph.getLocal("x")!.uses).toEqual([{ node: matmul, index: 0 }]);
    validateModel(model);
  });

  it("inserts a node and rewires uses", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const xw = graph.getLocal("xw")!;
    const add = node(graph, "/linear/Add");
    const scale = graph.addInitializer(Tensor.fromArray("scale", DataType.FLOAT, [], Float32Array.from([2])));
    const mul = graph.addNode({ opType: "Mul", name: "/linear/Scale", inputs: [xw, scale] }, { after: xw.producer! });
    xw.uses.filter((use) => use.node !== mul).forEach((use) => use.node.setInput(use.index, mul.outputs[0]));

    expect(graph.nodes.map((each) => each.name)).toEqual(["/linear/MatMul", "/linear/Scale", "/linear/Add", "/act/Relu"]);
    expect(add.inputs[0]).toBe(mul.outputs[0]);
    expect(xw.uses).toEqual([{ node: mul, index: 0 }]);
    expect(mul.outputs[0].uses).toEqual([{ node: add, index: 0 }]);
    validateModel(model, "insert");
  });

  it("replaces all uses, graph outputs included", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const y = graph.getLocal("y")!;
    const identity = graph.addNode({ opType: "Identity", inputs: [graph.getLocal("xwb")!] });
    y.replaceAllUsesWith(identity.outputs[0]);
    expect(graph.outputs).toEqual([identity.outputs[0]]);
    expect(eliminateDeadCode(graph)).toBe(true);
    expect(graph.nodes.map((each) => each.opType)).toEqual(["MatMul", "Add", "Identity"]);
    validateModel(model, "replace");
  });

  it("refuses to remove a node whose output is read", () => {
    const model = tinyLinearModel();
    let caught: unknown;
    try {
      model.graph.removeNode(node(model.graph, "/linear/MatMul"));
    } catch (error) {
      caught = error;
    }
    expect(isPeftcError(caught)).toBe(true);
    expect((caught as { code?: string }).code).toBe("E_IR_INVARIANT");
    expect(String(caught)).toContain("xw");
    validateModel(model);
  });

  it("replaces a node keeping its consumers", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const relu = node(graph, "/act/Relu");
    const replacement = graph.replaceNode(relu, { opType: "Sigmoid", name: "/act/Sigmoid", inputs: [relu.inputs[0]] });
    expect(graph.outputs[0]).toBe(replacement.outputs[0]);
    expect(graph.nodes.map((each) => each.opType)).toEqual(["MatMul", "Add", "Sigmoid"]);
    expect(graph.getLocal("y")).toBeUndefined();
    validateModel(model, "replace node");
  });

  it("makes names unique and deterministic", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const names = [1, 2, 3].map(() => graph.addNode({ opType: "Identity", name: "/linear/MatMul", inputs: [graph.getLocal("x")!] }).name);
    expect(names).toEqual(["/linear/MatMul_1", "/linear/MatMul_2", "/linear/MatMul_3"]);
    const values = [1, 2].map(() => graph.createValue("xw").name);
    expect(values).toEqual(["xw_1", "xw_2"]);
  });

  it("sorts an unsorted graph stably", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    graph.nodes.reverse();
    expect(topologicalSort(graph)).toBe(true);
    expect(graph.nodes.map((each) => each.name)).toEqual(["/linear/MatMul", "/linear/Add", "/act/Relu"]);
    expect(topologicalSort(graph)).toBe(false);
  });

  it("keeps file order among independent nodes", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const x = graph.getLocal("x")!;
    const a = graph.addNode({ opType: "Neg", name: "neg", inputs: [x] });
    const b = graph.addNode({ opType: "Abs", name: "abs", inputs: [x] });
    graph.addOutput(a.outputs[0]);
    graph.addOutput(b.outputs[0]);
    expect(topologicalOrder(graph).map((each) => each.name)).toEqual(["/linear/MatMul", "/linear/Add", "/act/Relu", "neg", "abs"]);
  });

  it("removes dead chains and unused initializers", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const unused = graph.addInitializer(Tensor.fromArray("unused", DataType.FLOAT, [1], Float32Array.from([1])));
    const dead = graph.addNode({ opType: "Neg", inputs: [graph.getLocal("xw")!] });
    graph.addNode({ opType: "Abs", inputs: [dead.outputs[0], unused] });
    expect(eliminateDeadCode(graph)).toBe(true);
    expect(graph.nodes).toHaveLength(3);
    expect(graph.initializers.has("unused")).toBe(false);
    expect(graph.getLocal("xw")!.uses).toHaveLength(1);
    expect(eliminateDeadCode(graph)).toBe(false);
    validateModel(model, "dead code");
  });

  it("keeps graph inputs during dead-code elimination", () => {
    const model = tinyLinearModel();
    model.graph.addInput("unused_input", tensorType(DataType.FLOAT, [1]));
    eliminateDeadCode(model.graph);
    expect(model.graph.inputs.map((value) => value.name)).toEqual(["x", "unused_input"]);
  });

  it("clones without sharing structure", () => {
    const model = tinyLinearModel();
    const copy = cloneModel(model);
    validateModel(copy);
    copy.graph.replaceNode(node(copy.graph, "/act/Relu"), { opType: "Tanh", inputs: [copy.graph.getLocal("xwb")!] });
    expect(model.graph.nodes.map((each) => each.opType)).toEqual(["MatMul", "Add", "Relu"]);
    expect(copy.graph.nodes.map((each) => each.opType)).toEqual(["MatMul", "Add", "Tanh"]);
    expect(model.graph.getLocal("xwb")!.uses[0].node.opType).toBe("Relu");
    expect(encodeModelProto(modelToProto(cloneModel(model)))).toEqual(encodeModelProto(modelToProto(model)));
  });

  it("clones subgraphs that read outer values", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const condition = graph.addInitializer(Tensor.fromArray("cond", DataType.BOOL, [], Uint8Array.from([1])));
    const ifNode = graph.addNode({ opType: "If", name: "branch", inputs: [condition], outputs: ["chosen"] });
    for (const branch of ["then_branch", "else_branch"]) {
      const body = new Graph(graph.names, branch, ifNode);
      const inner = body.addNode({ opType: "Neg", inputs: [graph.getLocal("y")!] });
      body.addOutput(inner.outputs[0]);
      ifNode.setAttribute(attr.graph(branch, body));
    }
    graph.addOutput(ifNode.outputs[0]);
    validateModel(model);
    const copy = cloneModel(model);
    validateModel(copy);
    const copiedY = copy.graph.getLocal("y")!;
    expect(copiedY.uses.map((use) => use.node.graph.name).sort()).toEqual(["else_branch", "then_branch"]);
    expect(topologicalOrder(copy.graph).map((each) => each.name).indexOf("branch")).toBe(3);
    // Removing the If must drop its subgraphs' reads of y as well.
    copy.graph.outputs.pop();
    eliminateDeadCode(copy.graph);
    expect(copiedY.uses).toHaveLength(0);
    validateModel(copy);
  });

  it("reports the pass that broke an invariant", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    // Simulate a buggy pass that drops a node from the list but leaves its reader.
    graph.nodes.splice(0, 1);
    expect(() => validateModel(model, "buggy-pass")).toThrow(/producer "\/linear\/MatMul" was removed.*buggy-pass/);
  });

  it("keeps an omitted optional output as an empty name", () => {
    const model = tinyLinearModel();
    const proto = modelToProto(model);
    proto.graph!.node!.push({ opType: "LayerNormalization", input: ["y", "b", "b"], output: ["ln", "", "inv_std"], attribute: [] });
    const loaded = loadModelFromBuffer(encodeModelProto(proto));
    const layerNorm = loaded.graph.nodes[3];
    expect(layerNorm.outputs.map((value) => value.name)).toEqual(["ln", "", "inv_std"]);
    expect(layerNorm.outputs[1].isOmitted).toBe(true);
    expect(modelToProto(loaded).graph!.node![3].output).toEqual(["ln", "", "inv_std"]);
  });
});
