import { AttributeType } from "../../../../../compiler/ir/attribute";
import { Tensor } from "../../../../../compiler/onnx/tensor";
import { DataType, attr, constant, infer, input, int64s, newModel, op, out, typeOf } from "../build";

describe("shape-building rules", () => {
  it("reads part of a shape with Shape's start and end (opset 15)", () => {
    const model = newModel({ "": 15 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 4, 8]);
    const tail = op(model.graph, "Shape", [x], { attributes: [attr.int("start", -2)] });
    const middle = op(model.graph, "Shape", [x], { attributes: [attr.int("start", 1), attr.int("end", -1)] });
    const filled = op(model.graph, "ConstantOfShape", [out(middle)]);
    infer(model);
    expect(typeOf(out(tail))).toBe("INT64[2]");
    expect(typeOf(out(filled))).toBe("FLOAT[sequence,4]");
  });

  it("counts elements with Size", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 4]);
    const size = op(model.graph, "Size", [x]);
    const flat = op(model.graph, "Reshape", [x, out(op(model.graph, "Unsqueeze", [out(size), int64s(model.graph, "axes", [0])]))]);
    infer(model);
    expect(typeOf(out(size))).toBe("INT64[]");
    expect(typeOf(out(flat))).toBe("FLOAT[4*batch]");
  });

  it("types every form of Constant", () => {
    const model = newModel();
    const tensor = op(model.graph, "Constant", [], { attributes: [attr.tensor("value", Tensor.fromArray("t", DataType.FLOAT16, [2, 3], new Float32Array(6)))] });
    const ints = op(model.graph, "Constant", [], { attributes: [attr.ints("value_ints", [1, 2, 3])] });
    const float = op(model.graph, "Constant", [], { attributes: [attr.float("value_float", 0.5)] });
    const strings = op(model.graph, "Constant", [], { attributes: [attr.strings("value_strings", ["a", "b"])] });
    infer(model);
    expect([tensor, ints, float, strings].map((node) => typeOf(out(node)))).toEqual(["FLOAT16[2,3]", "INT64[3]", "FLOAT[]", "STRING[2]"]);
  });

  it("shapes a sparse Constant from its dense dims", () => {
    const model = newModel();
    const sparse = op(model.graph, "Constant", [], {
      attributes: [{ name: "sparse_value", type: AttributeType.SPARSE_TENSOR, value: { values: { dataType: DataType.FLOAT, dims: [2] }, dims: [3, 4] } }],
    });
    infer(model);
    expect(typeOf(out(sparse))).toBe("FLOAT[3,4]");
  });

  it("takes ConstantOfShape's element type from its value", () => {
    const model = newModel();
    const fill = Tensor.fromArray("fill", DataType.INT64, [1], BigInt64Array.from([1n]));
    const ones = op(model.graph, "ConstantOfShape", [int64s(model.graph, "shape", [2, 3])], { attributes: [attr.tensor("value", fill)] });
    infer(model);
    expect(typeOf(out(ones))).toBe("INT64[2,3]");
  });

  it("counts Range elements from shape values", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "past+sequence"]);
    const y = input(model.graph, "y", DataType.FLOAT, ["batch", "sequence"]);
    const gather = (name: string, of: ReturnType<typeof input>) => out(op(model.graph, "Gather", [out(op(model.graph, "Shape", [of])), int64s(model.graph, name, [1], [])]));
    const past = op(model.graph, "Sub", [gather("total_index", x), gather("sequence_index", y)]);
    const positions = op(model.graph, "Range", [out(past), gather("total_again", x), int64s(model.graph, "step", [1], [])]);
    const stepped = op(model.graph, "Range", [int64s(model.graph, "zero", [0], []), int64s(model.graph, "ten", [10], []), int64s(model.graph, "three", [3], [])]);
    infer(model);
    expect(typeOf(out(positions))).toBe("INT64[sequence]");
    expect(typeOf(out(stepped))).toBe("INT64[4]");
  });

  it.each([
    ["NaN limit", 0, NaN, 1],
    ["infinite limit", 0, Infinity, 1],
    ["zero delta", 0, 5, 0],
  ])("Range %s reported", (_name, start, limit, delta) => {
    const model = newModel({ "": 17 });
    const scalar = (name: string, value: number) => constant(model.graph, name, DataType.FLOAT, [], [value]);
    const range = op(model.graph, "Range", [scalar("start", start), scalar("limit", limit), scalar("delta", delta)], { name: "range" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["range"]);
    expect(out(range).type).toBeUndefined();
  });

  it("Range steps in float32", () => {
    const model = newModel({ "": 17 });
    const scalar = (name: string, value: number) => constant(model.graph, name, DataType.FLOAT, [], [value]);
    const range = op(model.graph, "Range", [scalar("start", 0), scalar("limit", 2.5), scalar("delta", 0.7)]);
    const report = infer(model);
    expect(typeOf(out(range))).toBe("FLOAT[4]");
    // onnxruntime adds the float32 delta step by step: 0.7f + 0.7f + 0.7f rounds to 2.0999999046325684.
    expect(report.inferred.find((entry) => entry.value === out(range).name)?.values).toEqual([0, Math.fround(0.7), Math.fround(1.4), Math.fround(Math.fround(1.4) + Math.fround(0.7))]);
  });

  it.each([
    ["negative", [-1]],
    ["fractional", [2.5]],
    ["NaN", [NaN]],
  ])("ConstantOfShape %s shape reported", (_name, values) => {
    const model = newModel({ "": 17 });
    op(model.graph, "ConstantOfShape", [constant(model.graph, "shape", DataType.DOUBLE, [1], values)], { name: "fill" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["fill"]);
  });
});
