import * as fs from "node:fs";
import * as path from "node:path";
import { ShapeRuleRegistry, formatReport, inferShapes, unsupportedOpTypes } from "../../../../compiler/ir/infer";
import { loadModel, saveModel } from "../../../../compiler/ir/io";
import { Dim, tensorType } from "../../../../compiler/ir/types";
import { encodeModelProto, readModelProto } from "../../../../compiler/onnx/model-file";
import { Tensor } from "../../../../compiler/onnx/tensor";
import { makeTempDir, removeTempDirs } from "../../../helpers/temp";
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

describe("declared names", () => {
  it("input dim name on derived dim", () => {
    // The output names axis 1 "seq", which is also the name of axis 1 of input x, although the axis is seq+1 long.
    const model = newModel({ "": 17 });
    const g = model.graph;
    const x = input(g, "x", DataType.FLOAT, ["batch", "seq"]);
    const joined = out(op(g, "Concat", [x, input(g, "y", DataType.FLOAT, ["batch", 1])], { attributes: [attr.int("axis", 1)] }));
    const activated = out(op(g, "Relu", [joined]));
    joined.type = tensorType(DataType.FLOAT, ["batch", "seq"]);
    g.addOutput(joined);

    const report = inferShapes(model);

    expect(report.conflicts.map((entry) => entry.value)).toContain(joined.name);
    const activatedShape: Dim[] | undefined = activated.type?.kind === "tensor" ? activated.type.shape : undefined;
    expect(activatedShape?.[1]).not.toBe("seq");
  });

  it("names a derived dim with a new name", () => {
    // "total" is no input's axis name, so it names seq+1 everywhere, as for a cache's total length.
    const model = newModel({ "": 17 });
    const g = model.graph;
    const x = input(g, "x", DataType.FLOAT, ["batch", "seq"]);
    const joined = out(op(g, "Concat", [x, input(g, "y", DataType.FLOAT, ["batch", 1])], { attributes: [attr.int("axis", 1)] }));
    const activated = out(op(g, "Relu", [joined]));
    joined.type = tensorType(DataType.FLOAT, ["batch", "total"]);
    g.addOutput(joined);

    const report = inferShapes(model);

    expect(report.conflicts).toEqual([]);
    expect(typeOf(activated)).toBe("FLOAT[batch,total]");
  });

  it("derived declaration never equal reported", () => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "seq"]);
    const pair = input(model.graph, "pair", DataType.FLOAT, ["batch", 2]);
    const joined = out(op(model.graph, "Concat", [x, pair], { attributes: [attr.int("axis", 1)], name: "join" }));
    joined.type = tensorType(DataType.FLOAT, ["batch", "seq+1"]);

    const report = inferShapes(model);

    expect(report.conflicts.map((entry) => [entry.node, entry.detail])).toEqual([["join", "axis 1: declared seq+1 but inference gives seq+2, which is never equal to it"]]);
    expect(typeOf(joined)).toBe("FLOAT[batch,seq+1]");
  });
});

describe("declared types", () => {
  afterAll(removeTempDirs);

  it("input type differs from initializer", () => {
    // Graph input "w" declares INT64[5], but its initializer is FLOAT[4]. onnxruntime 1.31 rejects the file.
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, [4]);
    const weight = model.graph.addInitializer(Tensor.fromArray("w", DataType.FLOAT, [4], Float32Array.of(1, 2, 3, 4)), true);
    model.graph.addOutput(out(op(model.graph, "Add", [x, weight])));
    const file = path.join(makeTempDir("peftc-infer-"), "model.onnx");
    saveModel(model, file);
    const proto = readModelProto(file);
    proto.graph!.input!.push({ name: "w", type: { tensorType: { elemType: DataType.INT64, shape: { dim: [{ dimValue: 5 }] } } } });
    fs.writeFileSync(file, encodeModelProto(proto));

    let conflicts: string[] = [];
    let rejected = false;
    try {
      conflicts = inferShapes(loadModel(file)).conflicts.map((entry) => entry.value);
    } catch {
      rejected = true;
    }

    expect(rejected || conflicts.includes("w")).toBe(true);
  });

  it("value_info differs from initializer", () => {
    const model = newModel({ "": 17 });
    const weight = model.graph.addInitializer(Tensor.fromArray("w", DataType.FLOAT, [4], Float32Array.of(1, 2, 3, 4)), true);
    op(model.graph, "Relu", [weight]);
    weight.type = tensorType(DataType.FLOAT, [2, 2]);

    const report = inferShapes(model);

    expect(report.conflicts).toEqual([{ graph: "test", value: "w", node: "", declared: "FLOAT[2,2]", inferred: "FLOAT[4]", detail: "declared FLOAT[2,2] but the initializer holds FLOAT[4]" }]);
    expect(formatReport(report)).toMatch(/conflict: value "w": declared FLOAT\[2,2\]/);
  });
});

describe("declared sizes", () => {
  it("negative declared size unknown", () => {
    // Some exporters write -1 for a size that is only known at run time.
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, [-1, 4]);
    const expand = op(model.graph, "Expand", [x, int64s(model.graph, "target", [1, 4])]);
    const report = infer(model);
    expect(typeOf(out(expand))).toBe("FLOAT[?,4]");
    expect(report.failures).toEqual([]);
  });
});

describe("rule errors", () => {
  it("internal rule error recorded", () => {
    const registry = new ShapeRuleRegistry();
    registry.register({
      opType: "Relu",
      since: 1,
      infer: () => {
        throw new RangeError("Invalid array length");
      },
    });
    const model = newModel({ "": 17 });
    const relu = op(model.graph, "Relu", [input(model.graph, "x", DataType.FLOAT, [2])], { name: "relu" });

    const report = inferShapes(model, { registry });

    expect(report.failures.map((entry) => [entry.node, entry.value])).toEqual([["relu", out(relu).name]]);
    expect(report.failures[0]?.message).toMatch(/internal error \(RangeError: Invalid array length\)/);
    expect(report.untyped.map((entry) => entry.value)).toEqual([out(relu).name]);
  });
});
