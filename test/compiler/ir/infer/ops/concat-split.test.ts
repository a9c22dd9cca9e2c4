import { DataType, attr, infer, input, int64s, newModel, op, out, typeOf } from "../build";

describe("Concat", () => {
  it("adds the cache and new keys along the sequence axis", () => {
    const model = newModel();
    const past = input(model.graph, "past_key", DataType.FLOAT, ["batch", 4, "past_sequence", 16]);
    const current = input(model.graph, "key", DataType.FLOAT, ["batch", 4, "sequence", 16]);
    const present = op(model.graph, "Concat", [past, current], { attributes: [attr.int("axis", -2)] });
    infer(model);
    expect(typeOf(out(present))).toBe("FLOAT[batch,4,past_sequence+sequence,16]");
  });

  it("joins known shape values", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 6]);
    const shape = op(model.graph, "Shape", [x]);
    const target = op(model.graph, "Concat", [out(shape), int64s(model.graph, "tail", [1])], { attributes: [attr.int("axis", 0)] });
    const reshape = op(model.graph, "Reshape", [x, out(target)]);
    infer(model);
    expect(typeOf(out(reshape))).toBe("FLOAT[batch,6,1]");
  });

  it("rejects different sizes off the axis", () => {
    const model = newModel();
    const a = input(model.graph, "a", DataType.FLOAT, [2, 3]);
    const b = input(model.graph, "b", DataType.FLOAT, [4, 3]);
    op(model.graph, "Concat", [a, b], { attributes: [attr.int("axis", 1)], name: "bad_concat" });
    const report = infer(model);
    expect(report.failures[0]?.message).toMatch(/bad_concat.*different sizes 2 and 4 on axis 0/);
  });
});

describe("Split", () => {
  it("reads sizes from the attribute before opset 13", () => {
    const model = newModel({ "": 11 });
    const qkv = input(model.graph, "qkv", DataType.FLOAT, ["rows", 96]);
    const split = op(model.graph, "Split", [qkv], { attributes: [attr.int("axis", 1), attr.ints("split", [32, 32, 32])], outputs: 3 });
    infer(model);
    expect(split.outputs.map(typeOf)).toEqual(["FLOAT[rows,32]", "FLOAT[rows,32]", "FLOAT[rows,32]"]);
  });

  it("reads sizes from input 1 from opset 13", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 128]);
    const split = op(model.graph, "Split", [x, int64s(model.graph, "sizes", [96, 32])], { attributes: [attr.int("axis", -1)], outputs: 2 });
    infer(model);
    expect(split.outputs.map(typeOf)).toEqual(["FLOAT[batch,96]", "FLOAT[batch,32]"]);
  });

  it("splits evenly with num_outputs from opset 18", () => {
    const model = newModel({ "": 18 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 10]);
    const split = op(model.graph, "Split", [x], { attributes: [attr.int("axis", 1), attr.int("num_outputs", 3)], outputs: 3 });
    infer(model);
    expect(split.outputs.map(typeOf)).toEqual(["FLOAT[batch,4]", "FLOAT[batch,4]", "FLOAT[batch,2]"]);
  });

  it("divides a symbolic size evenly when it can", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, ["2*hidden"]);
    const y = input(model.graph, "y", DataType.FLOAT, ["hidden"]);
    const even = op(model.graph, "Split", [x], { outputs: 2 });
    const uneven = op(model.graph, "Split", [y], { outputs: 2 });
    infer(model);
    expect(even.outputs.map(typeOf)).toEqual(["FLOAT[hidden]", "FLOAT[hidden]"]);
    expect(uneven.outputs.map(typeOf)).toEqual(["FLOAT[?]", "FLOAT[?]"]);
  });

  it("rejects sizes that do not add up", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, [10]);
    op(model.graph, "Split", [x, int64s(model.graph, "sizes", [3, 3])], { outputs: 2, name: "bad_split" });
    const report = infer(model);
    expect(report.failures[0]?.message).toMatch(/bad_split.*\[3, 3\] do not add up to the axis size 10/);
  });

  it("split negative sizes reported", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, [4]);
    const node = op(model.graph, "Split", [x, int64s(model.graph, "sizes", [-1, 5])], { outputs: 2, name: "split" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["split"]);
    expect(node.outputs.map((output) => output.type)).toEqual([undefined, undefined]);
  });
});
