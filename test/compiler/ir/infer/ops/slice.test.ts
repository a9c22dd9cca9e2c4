import { DataType, attr, infer, input, int64s, newModel, op, out, typeOf } from "../build";

describe("Slice", () => {
  it("reads starts and ends from attributes before opset 10", () => {
    const model = newModel({ "": 9 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 10]);
    const slice = op(model.graph, "Slice", [x], { attributes: [attr.ints("starts", [2]), attr.ints("ends", [-1]), attr.ints("axes", [1])] });
    infer(model);
    expect(typeOf(out(slice))).toBe("FLOAT[batch,7]");
  });

  it("clamps numeric bounds and applies steps", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, [10, 8]);
    const slice = op(model.graph, "Slice", [x, int64s(model.graph, "starts", [1, 100]), int64s(model.graph, "ends", [1000, 0]), int64s(model.graph, "axes", [0, 1]), int64s(model.graph, "steps", [3, -2])]);
    infer(model);
    expect(typeOf(out(slice))).toBe("FLOAT[3,4]");
  });

  it("slices symbolic sizes to the end", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 64]);
    const slice = op(model.graph, "Slice", [x, int64s(model.graph, "starts", [1]), int64s(model.graph, "ends", [2 ** 62]), int64s(model.graph, "axes", [1])]);
    infer(model);
    expect(typeOf(out(slice))).toBe("FLOAT[batch,sequence-1,64]");
  });

  it("slices between bounds read from shapes", () => {
    const model = newModel();
    const mask = input(model.graph, "mask", DataType.FLOAT, [1, 1, 64, 64]);
    const key = input(model.graph, "key", DataType.FLOAT, ["batch", 2, "past+sequence", 4]);
    const query = input(model.graph, "query", DataType.FLOAT, ["batch", 2, "sequence", 4]);
    const keyLength = op(model.graph, "Gather", [out(op(model.graph, "Shape", [key])), int64s(model.graph, "two", [2], [])]);
    const queryLength = op(model.graph, "Gather", [out(op(model.graph, "Shape", [query])), int64s(model.graph, "two_again", [2], [])]);
    const start = op(model.graph, "Sub", [out(keyLength), out(queryLength)]);
    const unsqueeze = (name: string, value: ReturnType<typeof out>) => out(op(model.graph, "Unsqueeze", [value, int64s(model.graph, name, [0])]));
    const slice = op(model.graph, "Slice", [mask, unsqueeze("start_axes", out(start)), unsqueeze("end_axes", out(keyLength)), int64s(model.graph, "axes", [2])]);
    infer(model);
    // Symbolic bounds are assumed in range, as for any valid input of this graph.
    expect(typeOf(out(slice))).toBe("FLOAT[1,1,sequence,64]");
  });

  it("slices known shape values", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", "sequence", 4, 8]);
    const shape = op(model.graph, "Shape", [x]);
    const leading = op(model.graph, "Slice", [out(shape), int64s(model.graph, "starts", [0]), int64s(model.graph, "ends", [2])]);
    const target = op(model.graph, "Concat", [out(leading), int64s(model.graph, "hidden", [32])], { attributes: [attr.int("axis", 0)] });
    const merged = op(model.graph, "Reshape", [x, out(target)]);
    infer(model);
    expect(typeOf(out(merged))).toBe("FLOAT[batch,sequence,32]");
  });

  it("keeps the rank when the bounds are unknown", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 8]);
    const slice = op(model.graph, "Slice", [x, input(model.graph, "starts", DataType.INT64, [1]), input(model.graph, "ends", DataType.INT64, [1]), int64s(model.graph, "axes", [1])]);
    infer(model);
    expect(typeOf(out(slice))).toBe("FLOAT[batch,?]");
  });
});
