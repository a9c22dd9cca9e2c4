import { Graph } from "../../../../../compiler/ir/graph";
import { Value } from "../../../../../compiler/ir/value";
import { Model } from "../../../../../compiler/ir/model";
import { removeTempDirs } from "../../../../helpers/temp";
import { DataType, attr, constant, infer, input, int64s, newModel, op, out, typeOf } from "../build";
import { knownSizeDisagreements, zeros } from "../onnxruntime-comparison";

/** Builds Unsqueeze(Gather(Shape(x), index), 0): one axis size as a 1-D tensor, the exporter way. */
function axisSize(graph: Graph, x: Value, index: number): Value {
  const shape = op(graph, "Shape", [x]);
  const gathered = op(graph, "Gather", [out(shape), int64s(graph, `index_${index}`, [index], [])], { attributes: [attr.int("axis", 0)] });
  return out(op(graph, "Unsqueeze", [out(gathered), int64s(graph, `axes_${index}`, [0])]));
}

describe("Reshape and friends", () => {
  it("reshapes to a target computed from the input's shape", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 32]);
    const target = op(model.graph, "Concat", [axisSize(model.graph, x, 0), axisSize(model.graph, x, 1), int64s(model.graph, "heads", [4]), int64s(model.graph, "size", [8])], {
      attributes: [attr.int("axis", 0)],
    });
    const reshape = op(model.graph, "Reshape", [x, out(target)]);
    infer(model);
    expect(typeOf(out(reshape))).toBe("FLOAT[batch,sequence,4,8]");
  });

  it("resolves 0 and -1 in the target", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 32]);
    const merged = op(model.graph, "Reshape", [x, int64s(model.graph, "merge", [-1, 32])]);
    const split = op(model.graph, "Reshape", [x, int64s(model.graph, "split", [0, 0, 4, -1])]);
    infer(model);
    expect(typeOf(out(merged))).toBe("FLOAT[batch*sequence,32]");
    expect(typeOf(out(split))).toBe("FLOAT[batch,sequence,4,8]");
  });

  it("keeps zeros with allowzero from opset 14", () => {
    const model = newModel({ "": 14 });
    const x = input(model.graph, "x", DataType.FLOAT, [0, 4]);
    const reshape = op(model.graph, "Reshape", [x, int64s(model.graph, "shape", [0, 4])], { attributes: [attr.int("allowzero", 1)] });
    infer(model);
    expect(typeOf(out(reshape))).toBe("FLOAT[0,4]");
  });

  it("gives unknown sizes for a target known only by length", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 32]);
    const target = input(model.graph, "target", DataType.INT64, [3]);
    const reshape = op(model.graph, "Reshape", [x, target]);
    const report = infer(model);
    expect(typeOf(out(reshape))).toBe("FLOAT[?,?,?]");
    expect(report.incomplete.map((entry) => entry.value)).toEqual([out(reshape).name]);
  });

  it("rejects two -1 values", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 32]);
    op(model.graph, "Reshape", [x, int64s(model.graph, "target", [-1, -1])], { name: "two_unknowns" });
    const report = infer(model);
    expect(report.failures[0]).toMatchObject({ node: "two_unknowns", opType: "Reshape" });
    expect(report.failures[0]?.message).toMatch(/shape \[-1, -1\] has more than one -1/);
  });

  it("flattens around an axis", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 3, 4, 5]);
    const flatten = op(model.graph, "Flatten", [x], { attributes: [attr.int("axis", 2)] });
    const fromEnd = op(model.graph, "Flatten", [x], { attributes: [attr.int("axis", -1)] });
    const whole = op(model.graph, "Flatten", [x], { attributes: [attr.int("axis", 4)] });
    infer(model);
    expect(typeOf(out(flatten))).toBe("FLOAT[3*batch,20]");
    expect(typeOf(out(fromEnd))).toBe("FLOAT[12*batch,5]");
    expect(typeOf(out(whole))).toBe("FLOAT[60*batch,1]");
  });

  it("reads Squeeze and Unsqueeze axes from attributes before opset 13", () => {
    const model = newModel({ "": 11 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 1, 8]);
    const squeeze = op(model.graph, "Squeeze", [x], { attributes: [attr.ints("axes", [1])] });
    const unsqueeze = op(model.graph, "Unsqueeze", [out(squeeze)], { attributes: [attr.ints("axes", [0, -1])] });
    infer(model);
    expect(typeOf(out(squeeze))).toBe("FLOAT[batch,8]");
    expect(typeOf(out(unsqueeze))).toBe("FLOAT[1,batch,8,1]");
  });

  it("reads Squeeze and Unsqueeze axes from an input from opset 13", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 1, 8]);
    const squeeze = op(model.graph, "Squeeze", [x, int64s(model.graph, "squeeze_axes", [-2])]);
    const unsqueeze = op(model.graph, "Unsqueeze", [out(squeeze), int64s(model.graph, "unsqueeze_axes", [1])]);
    infer(model);
    expect(typeOf(out(squeeze))).toBe("FLOAT[batch,8]");
    expect(typeOf(out(unsqueeze))).toBe("FLOAT[batch,1,8]");
  });

  it("rejects squeezing an axis that is not 1", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, [2, 3]);
    op(model.graph, "Squeeze", [x, int64s(model.graph, "axes", [0])], { name: "squeeze_two" });
    const report = infer(model);
    expect(report.failures[0]?.message).toMatch(/squeeze_two.*axis 0.*size is 2/);
  });

  it("permutes with Transpose, reversing by default", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 4, 8]);
    const heads = op(model.graph, "Transpose", [x], { attributes: [attr.ints("perm", [0, 2, 1, 3])] });
    const reversed = op(model.graph, "Transpose", [x]);
    infer(model);
    expect(typeOf(out(heads))).toBe("FLOAT[batch,4,sequence,8]");
    expect(typeOf(out(reversed))).toBe("FLOAT[8,4,sequence,batch]");
  });

  it("reshapes through a keras-style ReduceProd of a shape slice", () => {
    const model = newModel({ "": 11 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 7, 8]);
    const shape = op(model.graph, "Shape", [x]);
    const leading = op(model.graph, "Slice", [out(shape), int64s(model.graph, "starts", [0]), int64s(model.graph, "ends", [2])]);
    const product = op(model.graph, "ReduceProd", [out(leading)], { attributes: [attr.int("keepdims", 1)] });
    const target = op(model.graph, "Concat", [out(product), int64s(model.graph, "width", [8])], { attributes: [attr.int("axis", 0)] });
    const reshape = op(model.graph, "Reshape", [x, out(target)]);
    infer(model);
    expect(typeOf(out(reshape))).toBe("FLOAT[7*batch,8]");
  });

  it("reshape fractional target reported", () => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, [2, 3]);
    op(model.graph, "Reshape", [x, constant(model.graph, "target", DataType.DOUBLE, [2], [1.5, 4])], { name: "reshape" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["reshape"]);
  });
});

describe("Squeeze with empty axes", () => {
  afterAll(removeTempDirs);

  // onnxruntime 1.31 treats empty axes like absent axes and removes every size-1 axis.
  const cases: [string, number][] = [
    ["axes input", 13],
    ["axes attribute", 11],
  ];

  it.each(cases)("squeeze empty %s", async (_name, opset) => {
    const build = (): Model => {
      const model = newModel({ "": opset });
      const x = input(model.graph, "x", DataType.FLOAT, [1, 3, 1]);
      if (opset >= 13) op(model.graph, "Squeeze", [x, int64s(model.graph, "axes", [], [0])]);
      else op(model.graph, "Squeeze", [x], { attributes: [attr.ints("axes", [])] });
      return model;
    };
    expect(await knownSizeDisagreements(build, { x: zeros([1, 3, 1]) }, {})).toEqual([]);
  });

  it("squeeze empty axes known", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, [1, 3, 1]);
    const squeeze = op(model.graph, "Squeeze", [x, input(model.graph, "axes", DataType.INT64, [0])]);
    infer(model);
    expect(typeOf(out(squeeze))).toBe("FLOAT[3]");
  });

  it("squeeze empty symbolic rank unknown", () => {
    // "batch" may be 1 at run time, so the rank of the result is not known.
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 1, 4]);
    const squeeze = op(model.graph, "Squeeze", [x, int64s(model.graph, "axes", [], [0])]);
    const report = infer(model);
    expect(typeOf(out(squeeze))).toBe("FLOAT[?]");
    expect(report.incomplete.map((entry) => entry.value)).toEqual([out(squeeze).name]);
  });
});
