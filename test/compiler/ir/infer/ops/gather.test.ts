import { DataType, attr, constant, infer, input, int64s, newModel, op, out, typeOf } from "../build";

describe("indexing rules", () => {
  it("gathers embeddings for token ids", () => {
    const model = newModel();
    const table = input(model.graph, "table", DataType.FLOAT, [512, 64]);
    const ids = input(model.graph, "ids", DataType.INT64, ["batch", "sequence"]);
    const gather = op(model.graph, "Gather", [table, ids]);
    infer(model);
    expect(typeOf(out(gather))).toBe("FLOAT[batch,sequence,64]");
  });

  it("drops the axis for a scalar index", () => {
    const model = newModel();
    const hidden = input(model.graph, "hidden", DataType.FLOAT, ["batch", "sequence", 64]);
    const first = op(model.graph, "Gather", [hidden, int64s(model.graph, "zero", [0], [])], { attributes: [attr.int("axis", 1)] });
    infer(model);
    expect(typeOf(out(first))).toBe("FLOAT[batch,64]");
  });

  it("reads a dimension out of a shape with a negative index", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 64]);
    const last = op(model.graph, "Gather", [out(op(model.graph, "Shape", [x])), int64s(model.graph, "minus_two", [-2], [])]);
    const ones = op(model.graph, "ConstantOfShape", [out(op(model.graph, "Unsqueeze", [out(last), int64s(model.graph, "axes", [0])]))]);
    infer(model);
    expect(typeOf(out(ones))).toBe("FLOAT[sequence]");
  });

  it("rejects an index outside a known shape", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    op(model.graph, "Gather", [out(op(model.graph, "Shape", [x])), int64s(model.graph, "five", [5], [])], { name: "bad_gather" });
    const report = infer(model);
    expect(report.failures[0]?.message).toMatch(/bad_gather.*index 5 is out of range/);
  });

  it("shapes GatherElements, GatherND and ScatterND", () => {
    const model = newModel();
    const data = input(model.graph, "data", DataType.FLOAT, ["batch", 10, 4]);
    const elements = op(model.graph, "GatherElements", [data, input(model.graph, "element_index", DataType.INT64, ["batch", 3, 4])]);
    const nd = op(model.graph, "GatherND", [data, input(model.graph, "nd_index", DataType.INT64, ["batch", 5, 2])], { attributes: [attr.int("batch_dims", 1)] });
    const scatter = op(model.graph, "ScatterND", [data, input(model.graph, "scatter_index", DataType.INT64, [2, 1]), input(model.graph, "updates", DataType.FLOAT, [2, 10, 4])]);
    infer(model);
    expect(typeOf(out(elements))).toBe("FLOAT[batch,3,4]");
    expect(typeOf(out(nd))).toBe("FLOAT[batch,5]");
    expect(typeOf(out(scatter))).toBe("FLOAT[batch,10,4]");
  });

  it("leaves the count of NonZero unknown", () => {
    const model = newModel();
    const nonZero = op(model.graph, "NonZero", [input(model.graph, "x", DataType.BOOL, [3, 4])]);
    const report = infer(model);
    expect(typeOf(out(nonZero))).toBe("INT64[2,?]");
    expect(report.incomplete).toHaveLength(1);
  });

  it("fractional shape index reported", () => {
    const model = newModel({ "": 17 });
    const shape = op(model.graph, "Shape", [input(model.graph, "x", DataType.FLOAT, ["batch", 4])]);
    op(model.graph, "Gather", [out(shape), constant(model.graph, "index", DataType.DOUBLE, [], [0.5])], { name: "gather" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["gather"]);
  });
});
