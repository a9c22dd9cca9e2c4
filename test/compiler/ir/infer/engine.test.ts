import { formatReport, unsupportedOpTypes } from "../../../../compiler/ir/infer";
import { tensorType } from "../../../../compiler/ir/types";
import { DataType, attr, infer, input, int64s, newModel, op, out, typeOf } from "./build";

describe("inferShapes", () => {
  it("keeps a declared type that agrees", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const relu = op(model.graph, "Relu", [x]);
    out(relu).type = tensorType(DataType.FLOAT, ["rows", 8]);
    const report = infer(model);
    expect(typeOf(out(relu))).toBe("FLOAT[rows,8]");
    expect(report.conflicts).toEqual([]);
  });

  it("replaces a declared name or unknown by an inferred number", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 1, 4]);
    const relu = op(model.graph, "Relu", [x]);
    out(relu).type = tensorType(DataType.FLOAT, ["batch", "seq_len_plus_1", null]);
    infer(model);
    expect(typeOf(out(relu))).toBe("FLOAT[batch,1,4]");
  });

  it("reports a conflicting declaration and keeps it", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const relu = op(model.graph, "Relu", [x], { name: "relu" });
    out(relu).type = tensorType(DataType.FLOAT16, ["batch", 4]);
    const report = infer(model);
    expect(typeOf(out(relu))).toBe("FLOAT16[batch,4]");
    expect(report.conflicts.map((conflict) => conflict.detail)).toEqual([
      "declared element type FLOAT16 but inference gives FLOAT",
      "axis 1: declared size 4 but inference gives 8",
    ]);
    expect(report.conflicts[0]).toMatchObject({ value: out(relu).name, node: "relu", declared: "FLOAT16[batch,4]", inferred: "FLOAT[batch,8]" });
  });

  it("reports a rank conflict", () => {
    const model = newModel();
    const relu = op(model.graph, "Relu", [input(model.graph, "x", DataType.FLOAT, ["batch", 8])]);
    out(relu).type = tensorType(DataType.FLOAT, ["batch"]);
    const report = infer(model);
    expect(report.conflicts[0]?.detail).toMatch(/rank 1.*rank 2/);
  });

  it("reports an unknown op by name and leaves what it feeds untyped", () => {
    const model = newModel({ "": 18, "com.example": 1 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const mystery = op(model.graph, "Mystery", [x], { domain: "com.example", name: "mystery_node" });
    const relu = op(model.graph, "Relu", [out(mystery)], { name: "after" });
    const report = infer(model);
    expect(report.unsupported).toEqual([{ graph: "test", node: "mystery_node", opType: "Mystery", domain: "com.example", opset: 1 }]);
    expect(unsupportedOpTypes(report)).toEqual(["com.example::Mystery"]);
    expect(report.untyped.map((entry) => [entry.value, entry.reason])).toEqual([
      [out(mystery).name, "no shape rule covers com.example::Mystery at opset 1"],
      [out(relu).name, `input "${out(mystery).name}" has no known type`],
    ]);
    expect(formatReport(report)).toMatch(/unsupported: com\.example::Mystery \(opset 1\) at node "mystery_node"/);
  });

  it("walks nodes stored out of order", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const first = op(model.graph, "Relu", [x]);
    const second = op(model.graph, "Sigmoid", [out(first)]);
    model.graph.nodes.reverse();
    infer(model);
    expect(typeOf(out(second))).toBe("FLOAT[batch,8]");
  });

  it("names a derived dimension as the graph output declares it", () => {
    const model = newModel();
    const past = input(model.graph, "past", DataType.FLOAT, ["batch", "past_seq_len", 4]);
    const current = input(model.graph, "current", DataType.FLOAT, ["batch", "seq_len", 4]);
    const present = op(model.graph, "Concat", [past, current], { attributes: [attr.int("axis", 1)] });
    const scores = op(model.graph, "MatMul", [current, out(op(model.graph, "Transpose", [out(present)], { attributes: [attr.ints("perm", [0, 2, 1])] }))]);
    out(present).type = tensorType(DataType.FLOAT, ["batch", "total_seq_len", 4]);
    model.graph.addOutput(out(present));
    infer(model);
    expect(typeOf(out(present))).toBe("FLOAT[batch,total_seq_len,4]");
    expect(typeOf(out(scores))).toBe("FLOAT[batch,seq_len,total_seq_len]");
  });

  it("computes with the inferred size where a declaration names it differently", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 1024, 16]);
    const target = int64s(model.graph, "target", [-1, 16]);
    const declared = op(model.graph, "Reshape", [x, target]);
    out(declared).type = tensorType(DataType.FLOAT, ["mul_3", 16]);
    const undeclared = op(model.graph, "Reshape", [out(op(model.graph, "Sigmoid", [x])), target]);
    const product = op(model.graph, "Mul", [out(declared), out(undeclared)]);
    infer(model);
    expect(typeOf(out(declared))).toBe("FLOAT[mul_3,16]");
    expect(typeOf(out(product))).toBe("FLOAT[mul_3,16]");
  });

  it("reports the known values of shape tensors", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 8]);
    const shape = op(model.graph, "Shape", [x]);
    const doubled = op(model.graph, "Mul", [out(shape), int64s(model.graph, "two", [2], [])]);
    const report = infer(model);
    const values = new Map(report.inferred.map((entry) => [entry.value, entry.values]));
    expect(values.get(out(shape).name)).toEqual(["batch", "sequence", 8]);
    expect(values.get(out(doubled).name)).toEqual(["2*batch", "2*sequence", 16]);
  });

  it("leaves graph inputs as declared", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["past_sequence + sequence", 8]);
    op(model.graph, "Relu", [x]);
    infer(model);
    expect(typeOf(x)).toBe("FLOAT[past_sequence + sequence,8]");
  });
});
