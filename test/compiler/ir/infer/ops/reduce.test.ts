import { DataType, attr, infer, input, int64s, newModel, op, out, typeOf } from "../build";

describe("reduction rules", () => {
  it("reads ReduceMean axes from the attribute before opset 18", () => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 64]);
    const mean = op(model.graph, "ReduceMean", [x], { attributes: [attr.ints("axes", [-1])] });
    infer(model);
    expect(typeOf(out(mean))).toBe("FLOAT[batch,sequence,1]");
  });

  it("reads ReduceMean axes from input 1 from opset 18", () => {
    const model = newModel({ "": 18 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 64]);
    const mean = op(model.graph, "ReduceMean", [x, int64s(model.graph, "axes", [1])], { attributes: [attr.int("keepdims", 0)] });
    infer(model);
    expect(typeOf(out(mean))).toBe("FLOAT[batch,64]");
  });

  it("switches ReduceSum to input axes at opset 13", () => {
    const before = newModel({ "": 12 });
    const sumBefore = op(before.graph, "ReduceSum", [input(before.graph, "x", DataType.FLOAT, [2, 3])], { attributes: [attr.ints("axes", [0])] });
    infer(before);
    expect(typeOf(out(sumBefore))).toBe("FLOAT[1,3]");

    const after = newModel({ "": 13 });
    const x = input(after.graph, "x", DataType.INT64, ["batch", "total"]);
    const sumAfter = op(after.graph, "ReduceSum", [x, int64s(after.graph, "axes", [1])]);
    const everything = op(after.graph, "ReduceSum", [x], { attributes: [attr.int("keepdims", 0)] });
    infer(after);
    expect(typeOf(out(sumAfter))).toBe("INT64[batch,1]");
    expect(typeOf(out(everything))).toBe("INT64[]");
  });

  it("passes the input through with noop_with_empty_axes", () => {
    const model = newModel({ "": 18 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 4]);
    const max = op(model.graph, "ReduceMax", [x], { attributes: [attr.int("noop_with_empty_axes", 1)] });
    infer(model);
    expect(typeOf(out(max))).toBe("FLOAT[batch,4]");
  });

  it("shapes ArgMax and TopK", () => {
    const model = newModel();
    const logits = input(model.graph, "logits", DataType.FLOAT, ["batch", "sequence", 512]);
    const argmax = op(model.graph, "ArgMax", [logits], { attributes: [attr.int("axis", -1), attr.int("keepdims", 0)] });
    const topk = op(model.graph, "TopK", [logits, int64s(model.graph, "k", [5])], { outputs: 2 });
    infer(model);
    expect(typeOf(out(argmax))).toBe("INT64[batch,sequence]");
    expect(topk.outputs.map(typeOf)).toEqual(["FLOAT[batch,sequence,5]", "INT64[batch,sequence,5]"]);
  });

  it.each([
    ["negative", -1],
    ["larger than the axis", 7],
  ])("TopK %s k reported", (_name, k) => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, [2, 6]);
    op(model.graph, "TopK", [x, int64s(model.graph, "k", [k])], { outputs: 2, name: "top" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["top"]);
  });

  it("empty axes input reduces all", () => {
    const model = newModel({ "": 18 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 6]);
    const mean = op(model.graph, "ReduceMean", [x, input(model.graph, "axes", DataType.INT64, [0])], { attributes: [attr.int("keepdims", 0)] });
    infer(model);
    expect(typeOf(out(mean))).toBe("FLOAT[]");
  });
});
