// Public IR edits that leave the graph inconsistent while validateModel
// still passes, or that fail halfway and leave part of the edit behind.
import { attr } from "../../../compiler/ir/attribute";
import { eliminateDeadCode } from "../../../compiler/ir/dead-code";
import { Graph } from "../../../compiler/ir/graph";
import { loadModelFromBuffer } from "../../../compiler/ir/io";
import { Model } from "../../../compiler/ir/model";
import { Node } from "../../../compiler/ir/node";
import { modelToProto } from "../../../compiler/ir/to-proto";
import { tensorType } from "../../../compiler/ir/types";
import { validateModel } from "../../../compiler/ir/validate";
import { DataType } from "../../../compiler/onnx/dtype";
import { encodeModelProto } from "../../../compiler/onnx/model-file";
import { tinyLinearModel } from "../../helpers/tiny-model";

function reload(model: Model): Model {
  return loadModelFromBuffer(encodeModelProto(modelToProto(model)), "reloaded");
}

/** Builds the tiny linear model with If(cond) branches that compute Neg(xw), reading "xw" from the main graph. */
function withIfReadingXw(): Model {
  const model = tinyLinearModel();
  const graph = model.graph;
  const cond = graph.addInput("cond", tensorType(DataType.BOOL, []));
  const ifNode = graph.addNode({ opType: "If", name: "branch", inputs: [cond], outputs: ["branch_out"] });
  for (const name of ["then_branch", "else_branch"]) {
    const branch = new Graph(graph.names, name, ifNode);
    const neg = branch.addNode({ opType: "Neg", name: `${name}_neg`, inputs: [graph.getLocal("xw")!], outputs: [`${name}_out`] });
    branch.addOutput(neg.outputs[0]);
    ifNode.setAttribute(attr.graph(name, branch));
  }
  graph.addOutput(ifNode.outputs[0]);
  return model;
}

/** Builds the tiny linear model with an Identity "extra" whose output both If branches return directly. */
function withPassThroughBranches(): { model: Model; extra: Node } {
  const model = tinyLinearModel();
  const graph = model.graph;
  const cond = graph.addInput("cond", tensorType(DataType.BOOL, []));
  const extra = graph.addNode({ opType: "Identity", name: "extra", inputs: [graph.getLocal("xw")!], outputs: ["extra_out"] });
  const ifNode = graph.addNode({ opType: "If", name: "branch", inputs: [cond], outputs: ["branch_out"] });
  for (const name of ["then_branch", "else_branch"]) {
    const branch = new Graph(graph.names, name, ifNode);
    branch.addOutput(extra.outputs[0]);
    ifNode.setAttribute(attr.graph(name, branch));
  }
  graph.addOutput(ifNode.outputs[0]);
  return { model, extra };
}

describe("Value.name", () => {
  it("rejects a name a subgraph uses", () => {
    // Without a check, the saved file links the branch's Neg to its own output, a cycle on reload.
    const model = withIfReadingXw();
    expect(() => {
      model.graph.getLocal("xw")!.name = "then_branch_out";
      validateModel(model);
    }).toThrow();
  });

  it("rejects the empty name", () => {
    // "" marks an omitted optional input, so after a save the Add silently loses its first input.
    const model = tinyLinearModel();
    expect(() => {
      model.graph.getLocal("xw")!.name = "";
      validateModel(model);
    }).toThrow();
  });

  it("keeps links through save and load", () => {
    const model = withIfReadingXw();
    try {
      model.graph.getLocal("xw")!.name = "then_branch_out";
    } catch {
      return; // A rename that throws also fixes this case.
    }
    const reloaded = reload(model);
    const thenBranch = reloaded.graph.nodes.find((node) => node.opType === "If")!.subgraphs[0];
    expect(thenBranch.nodes[0].inputs[0]?.graph.name).toBe(reloaded.graph.name);
  });
});

describe("Graph.removeNode", () => {
  it("refuses an output a subgraph returns", () => {
    const { model, extra } = withPassThroughBranches();
    validateModel(model);
    expect(() => model.graph.removeNode(extra)).toThrow();
    validateModel(model);
  });
});

describe("eliminateDeadCode", () => {
  it("keeps an output a subgraph returns", () => {
    const { model, extra } = withPassThroughBranches();
    validateModel(model);
    eliminateDeadCode(model.graph);
    expect(model.graph.nodes.map((node) => node.name)).toContain(extra.name);
    expect(() => validateModel(model)).not.toThrow();
  });
});

describe("Value.replaceAllUsesWith", () => {
  it("redirects subgraph outputs", () => {
    const model = tinyLinearModel();
    const graph = model.graph;
    const cond = graph.addInput("cond", tensorType(DataType.BOOL, []));
    const xw = graph.getLocal("xw")!;
    const ifNode = graph.addNode({ opType: "If", name: "branch", inputs: [cond], outputs: ["branch_out"] });
    const branch = new Graph(graph.names, "then_branch", ifNode);
    branch.addOutput(xw);
    ifNode.setAttribute(attr.graph("then_branch", branch));
    graph.addOutput(ifNode.outputs[0]);
    const other = graph.addNode({ opType: "Identity", name: "other", inputs: [graph.getLocal("x")!], outputs: ["other_out"] });

    xw.replaceAllUsesWith(other.outputs[0]);
    expect(branch.outputs[0].name).toBe("other_out");
  });
});

describe("Node.setInput", () => {
  it("on a removed node is caught", () => {
    // A read recorded for a removed node makes eliminateDeadCode and removeNode treat W as used.
    const model = tinyLinearModel();
    const graph = model.graph;
    const ghost = graph.addNode({ opType: "Identity", name: "ghost", inputs: [graph.getLocal("x")!], outputs: ["ghost_out"] });
    graph.removeNode(ghost);
    expect(() => {
      ghost.setInput(0, graph.getLocal("W")!);
      validateModel(model);
    }).toThrow();
  });
});

describe("Graph.addNode", () => {
  it("leaves nothing behind on a bad anchor", () => {
    const model = tinyLinearModel();
    const other = tinyLinearModel();
    const graph = model.graph;
    const x = graph.getLocal("x")!;
    expect(() => graph.addNode({ opType: "Identity", name: "stray", inputs: [x], outputs: ["stray_out"] }, { before: other.graph.nodes[0] })).toThrow();
    expect(x.uses.map((use) => use.node.name)).toEqual(["/linear/MatMul"]);
    expect(graph.getLocal("stray_out")).toBeUndefined();
  });
});

describe("Graph.replaceNode", () => {
  it("leaves the graph unchanged on failure", () => {
    const model = new Model({ irVersion: 8, opsetImports: new Map([["", 17]]), graphName: "split" });
    const graph = model.graph;
    const x = graph.addInput("x", tensorType(DataType.FLOAT, [4]));
    const split = graph.addNode({ opType: "Split", name: "split", inputs: [x], outputs: ["a", "b"] });
    const reluA = graph.addNode({ opType: "Relu", inputs: [split.outputs[0]], outputs: ["ra"] });
    const reluB = graph.addNode({ opType: "Relu", inputs: [split.outputs[1]], outputs: ["rb"] });
    graph.addOutput(reluA.outputs[0]);
    graph.addOutput(reluB.outputs[0]);

    // One output cannot take the uses of two, so this must fail, and fail before inserting the new node.
    expect(() => graph.replaceNode(split, { opType: "Identity", name: "id", inputs: [x], outputs: 1 })).toThrow();
    expect(graph.nodes.map((node) => node.name)).toEqual(["split", "Relu", "Relu_1"]);
    expect(reluA.inputs[0]?.name).toBe("a");
  });
});
