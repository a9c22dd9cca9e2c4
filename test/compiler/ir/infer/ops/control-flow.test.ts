import { Graph } from "../../../../../compiler/ir/graph";
import { Model } from "../../../../../compiler/ir/model";
import { Node } from "../../../../../compiler/ir/node";
import { tensorType } from "../../../../../compiler/ir/types";
import { DataType, attr, constant, infer, input, int64s, newModel, op, out, typeOf } from "../build";

/** Creates a subgraph owned by `owner` and stores it as attribute `name`. */
function subgraph(model: Model, owner: Node, name: string): Graph {
  const graph = new Graph(model.names, name, owner);
  owner.setAttribute(attr.graph(name, graph));
  return graph;
}

describe("If", () => {
  it("keeps what both branches agree on", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const condition = input(model.graph, "condition", DataType.BOOL, []);
    const node = op(model.graph, "If", [condition]);
    const thenBranch = subgraph(model, node, "then_branch");
    thenBranch.addOutput(out(op(thenBranch, "Relu", [x])));
    const elseBranch = subgraph(model, node, "else_branch");
    elseBranch.addOutput(out(op(elseBranch, "Concat", [x, x], { attributes: [attr.int("axis", 1)] })));
    infer(model);
    expect(typeOf(out(node))).toBe("FLOAT[batch,?]");
    expect(typeOf(thenBranch.outputs[0])).toBe("FLOAT[batch,8]");
  });

  it("takes the branch a known condition selects", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const node = op(model.graph, "If", [constant(model.graph, "yes", DataType.BOOL, [], [1])]);
    subgraph(model, node, "then_branch").addOutput(x);
    const elseBranch = subgraph(model, node, "else_branch");
    elseBranch.addOutput(out(op(elseBranch, "Concat", [x, x], { attributes: [attr.int("axis", 1)] })));
    infer(model);
    expect(typeOf(out(node))).toBe("FLOAT[batch,8]");
  });
});

describe("Loop", () => {
  it("stacks scan outputs and widens carried values that grow", () => {
    const model = newModel();
    const start = input(model.graph, "start", DataType.FLOAT, [1, 4]);
    const node = op(model.graph, "Loop", [int64s(model.graph, "trips", [3], []), undefined, start], { outputs: 2 });
    const body = subgraph(model, node, "body");
    body.inputs.push(body.createValue("iteration", tensorType(DataType.INT64, [])), body.createValue("keep_going", tensorType(DataType.BOOL, [])), body.createValue("carried"));
    const grown = op(body, "Concat", [body.inputs[2], start], { attributes: [attr.int("axis", 0)] });
    const row = op(body, "ReduceSum", [body.inputs[2], int64s(body, "rows", [0])]);
    body.addOutput(body.inputs[1]);
    body.addOutput(out(grown));
    body.addOutput(out(row));
    infer(model);
    expect(typeOf(out(node, 0))).toBe("FLOAT[?,4]");
    expect(typeOf(out(node, 1))).toBe("FLOAT[3,1,4]");
    expect(typeOf(body.inputs[2])).toBe("FLOAT[?,4]");
  });
});

describe("Loop trip count", () => {
  it("negative trip count unknown", () => {
    const model = newModel();
    const start = input(model.graph, "start", DataType.FLOAT, [1, 4]);
    const node = op(model.graph, "Loop", [int64s(model.graph, "trips", [-2], []), undefined, start], { outputs: 2 });
    const body = subgraph(model, node, "body");
    body.inputs.push(body.createValue("iteration", tensorType(DataType.INT64, [])), body.createValue("keep_going", tensorType(DataType.BOOL, [])), body.createValue("carried"));
    body.addOutput(body.inputs[1]);
    body.addOutput(body.inputs[2]);
    body.addOutput(out(op(body, "Relu", [body.inputs[2]])));
    infer(model);
    expect(typeOf(out(node, 1))).toBe("FLOAT[?,1,4]");
  });
});

describe("Scan", () => {
  it("slices scan inputs and stacks scan outputs", () => {
    const model = newModel();
    const state = input(model.graph, "state", DataType.FLOAT, [4]);
    const sequence = input(model.graph, "sequence", DataType.FLOAT, ["steps", 4]);
    const node = op(model.graph, "Scan", [state, sequence], { outputs: 2, attributes: [attr.int("num_scan_inputs", 1)] });
    const body = subgraph(model, node, "body");
    body.inputs.push(body.createValue("state_in"), body.createValue("item"));
    const sum = op(body, "Add", [body.inputs[0], body.inputs[1]]);
    body.addOutput(out(sum));
    body.addOutput(out(op(body, "Unsqueeze", [out(sum), int64s(body, "axes", [0])])));
    infer(model);
    expect(typeOf(body.inputs[1])).toBe("FLOAT[4]");
    expect(typeOf(out(node, 0))).toBe("FLOAT[4]");
    expect(typeOf(out(node, 1))).toBe("FLOAT[steps,1,4]");
  });
});

describe("model-local functions", () => {
  function modelWithFunction(): Model {
    const model = newModel({ "": 18, local: 1 });
    const body = new Graph(model.names, "scaled_scores");
    const query = body.createValue("query", undefined, true);
    const key = body.createValue("key", undefined, true);
    body.inputs.push(query, key);
    const transposed = op(body, "Transpose", [key], { attributes: [attr.ints("perm", [0, 2, 1])] });
    body.addOutput(out(op(body, "MatMul", [query, out(transposed)])));
    model.functions.push({
      name: "ScaledScores",
      domain: "local",
      overload: undefined,
      body,
      attributeNames: [],
      attributeProtos: [],
      opsetImports: new Map([["", 18]]),
      valueInfo: [],
      docString: undefined,
      metadataProps: undefined,
    });
    return model;
  }

  it("infers each call through the body with its own input types", () => {
    const model = modelWithFunction();
    const g = model.graph;
    const first = op(g, "ScaledScores", [input(g, "q1", DataType.FLOAT, ["batch", "sequence", 8]), input(g, "k1", DataType.FLOAT, ["batch", "total", 8])], { domain: "local" });
    const second = op(g, "ScaledScores", [input(g, "q2", DataType.FLOAT16, [2, 3, 4]), input(g, "k2", DataType.FLOAT16, [2, 5, 4])], { domain: "local" });
    const report = infer(model);
    expect(report.unsupported).toEqual([]);
    expect(typeOf(out(first))).toBe("FLOAT[batch,sequence,total]");
    expect(typeOf(out(second))).toBe("FLOAT16[2,3,5]");
  });

  it("reports an op inside a function body once, with the function's name", () => {
    const model = modelWithFunction();
    op(model.functions[0].body, "Mystery", [model.functions[0].body.inputs[0]], { domain: "local", name: "inside" });
    const g = model.graph;
    const a = input(g, "a", DataType.FLOAT, [1, 2, 3]);
    op(g, "ScaledScores", [a, a], { domain: "local" });
    op(g, "ScaledScores", [a, a], { domain: "local" });
    const report = infer(model);
    expect(report.unsupported).toEqual([{ graph: "function local::ScaledScores", node: "inside", opType: "Mystery", domain: "local", opset: 1 }]);
  });
});
