import { inferShapes } from "../../../../../compiler/ir/infer";
import { Model } from "../../../../../compiler/ir/model";
import { formatType } from "../../../../../compiler/ir/types";
import { removeTempDirs } from "../../../../helpers/temp";
import { DataType, attr, constant, infer, input, int64s, newModel, op, out, typeOf } from "../build";
import { knownSizeDisagreements, runEveryValue, zeros } from "../onnxruntime-comparison";

describe("elementwise rules", () => {
  it("broadcasts symbolic shapes for Add", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 64]);
    const bias = input(model.graph, "bias", DataType.FLOAT, [64]);
    const add = op(model.graph, "Add", [x, bias]);
    infer(model);
    expect(typeOf(out(add))).toBe("FLOAT[batch,sequence,64]");
  });

  it("stretches size-1 axes against names", () => {
    const model = newModel();
    const scores = input(model.graph, "scores", DataType.FLOAT, ["batch", 4, "sequence", "total"]);
    const mask = input(model.graph, "mask", DataType.FLOAT, ["batch", 1, 1, "total"]);
    const add = op(model.graph, "Add", [scores, mask]);
    infer(model);
    expect(typeOf(out(add))).toBe("FLOAT[batch,4,sequence,total]");
  });

  it("reports incompatible sizes as a failure", () => {
    const model = newModel();
    const a = input(model.graph, "a", DataType.FLOAT, [2, 3]);
    const b = input(model.graph, "b", DataType.FLOAT, [4]);
    op(model.graph, "Mul", [a, b], { name: "bad_mul" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["bad_mul"]);
    expect(report.failures[0].message).toMatch(/bad_mul.*Mul.*cannot be broadcast/);
  });

  it("keeps the input shape for unary ops", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT16, ["batch", "sequence", 8]);
    const softmax = op(model.graph, "Softmax", [x], { attributes: [attr.int("axis", -1)] });
    const erf = op(model.graph, "Erf", [out(softmax)]);
    infer(model);
    expect(typeOf(out(erf))).toBe("FLOAT16[batch,sequence,8]");
  });

  it("types comparisons and IsNaN as bool", () => {
    const model = newModel();
    const a = input(model.graph, "a", DataType.INT64, ["batch", 1]);
    const b = input(model.graph, "b", DataType.INT64, [1, "sequence"]);
    const less = op(model.graph, "Less", [a, b]);
    const isNan = op(model.graph, "IsNaN", [input(model.graph, "f", DataType.FLOAT, [3])]);
    infer(model);
    expect(typeOf(out(less))).toBe("BOOL[batch,sequence]");
    expect(typeOf(out(isNan))).toBe("BOOL[3]");
  });

  it("takes Where's type from its branches", () => {
    const model = newModel();
    const condition = input(model.graph, "condition", DataType.BOOL, [1, 1, "sequence", "sequence"]);
    const scores = input(model.graph, "scores", DataType.FLOAT, ["batch", 2, "sequence", "sequence"]);
    const fill = constant(model.graph, "fill", DataType.FLOAT, [], [-1e4]);
    const where = op(model.graph, "Where", [condition, scores, fill]);
    infer(model);
    expect(typeOf(out(where))).toBe("FLOAT[batch,2,sequence,sequence]");
  });

  it("broadcasts every input of Sum", () => {
    const model = newModel();
    const a = input(model.graph, "a", DataType.FLOAT, ["n", 1]);
    const b = input(model.graph, "b", DataType.FLOAT, [5]);
    const c = input(model.graph, "c", DataType.FLOAT, [1, 1]);
    const sum = op(model.graph, "Sum", [a, b, c]);
    infer(model);
    expect(typeOf(out(sum))).toBe("FLOAT[n,5]");
  });

  it("gives Dropout a bool mask", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const dropout = op(model.graph, "Dropout", [x], { outputs: 2 });
    infer(model);
    expect(typeOf(out(dropout, 0))).toBe("FLOAT[batch,8]");
    expect(typeOf(out(dropout, 1))).toBe("BOOL[batch,8]");
  });

  it("applies Cast and CastLike element types", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const cast = op(model.graph, "Cast", [x], { attributes: [attr.int("to", DataType.FLOAT16)] });
    const like = op(model.graph, "CastLike", [x, input(model.graph, "target", DataType.DOUBLE, [])]);
    infer(model);
    expect(typeOf(out(cast))).toBe("FLOAT16[batch,8]");
    expect(typeOf(out(like))).toBe("DOUBLE[batch,8]");
  });

  it("computes shape values through arithmetic", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 64]);
    const shape = op(model.graph, "Shape", [x]);
    const sequence = op(model.graph, "Gather", [out(shape), int64s(model.graph, "one", [1], [])]);
    const plusOne = op(model.graph, "Add", [out(sequence), int64s(model.graph, "constant_one", [1], [])]);
    const ones = op(model.graph, "ConstantOfShape", [op(model.graph, "Unsqueeze", [out(plusOne), int64s(model.graph, "axes", [0])]).outputs[0]]);
    infer(model);
    expect(typeOf(out(ones))).toBe("FLOAT[sequence+1]");
  });

  it("decides Equal on shape values against negative constants", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 4]);
    const shape = op(model.graph, "Shape", [x]);
    const minusOne = int64s(model.graph, "minus_one", [-1, -1]);
    const isMinusOne = op(model.graph, "Equal", [out(shape), minusOne]);
    const chosen = op(model.graph, "Where", [out(isMinusOne), int64s(model.graph, "ones", [1, 1]), out(shape)]);
    const expanded = op(model.graph, "Expand", [input(model.graph, "y", DataType.FLOAT, [1, 1]), out(chosen)]);
    infer(model);
    expect(typeOf(out(expanded))).toBe("FLOAT[batch,4]");
  });
});

describe("element types", () => {
  afterAll(removeTempDirs);

  it("unknown size broadcasts unknown", async () => {
    // [1] + [?] has the unknown size, which is 5 at run time here, not 1.
    const build = (): Model => {
      const model = newModel({ "": 17 });
      op(model.graph, "Add", [input(model.graph, "x", DataType.FLOAT, [1]), input(model.graph, "y", DataType.FLOAT, [null])]);
      return model;
    };
    expect(await knownSizeDisagreements(build, { x: zeros([1]), y: zeros([5]) })).toEqual([]);
  });

  it("dropout mask type at opset 9", async () => {
    // Dropout-7 returns a mask of the input's type, and bool masks start at Dropout-10.
    const build = (): Model => {
      const model = newModel({ "": 9 });
      op(model.graph, "Dropout", [input(model.graph, "x", DataType.FLOAT, [3, 3])], { outputs: 2 });
      return model;
    };
    const inferred = build();
    inferShapes(inferred);
    const mask = inferred.graph.nodes[0].outputs[1];
    const results = await runEveryValue(build(), { x: zeros([3, 3]) });

    expect(results[mask.name].type).toBe("float32");
    expect(formatType(mask.type)).toBe("FLOAT[3,3]");
  });
});

describe("operators outside their opset", () => {
  // onnxruntime 1.31 rejects these models because Trilu starts at opset 14 and Mish at 18.
  const cases: [string, number][] = [
    ["Trilu", 13],
    ["Mish", 17],
  ];

  it.each(cases)("%s at opset %i unsupported", (opType, opset) => {
    const model = newModel({ "": opset });
    op(model.graph, opType, [input(model.graph, "x", DataType.FLOAT, [3, 3])]);

    const report = inferShapes(model);

    expect(report.unsupported.map((entry) => entry.opType)).toEqual([opType]);
  });

  it.each([
    ["Trilu", 14],
    ["Mish", 18],
  ])("%s at opset %i typed", (opType, opset) => {
    const model = newModel({ "": opset });
    const node = op(model.graph, opType, [input(model.graph, "x", DataType.FLOAT, [3, 3])]);
    const report = inferShapes(model);
    expect(report.unsupported).toEqual([]);
    expect(typeOf(out(node))).toBe("FLOAT[3,3]");
  });
});
