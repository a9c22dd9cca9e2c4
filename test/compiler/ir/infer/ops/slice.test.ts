import { inferShapes } from "../../../../../compiler/ir/infer";
import { Model } from "../../../../../compiler/ir/model";
import { tensorType } from "../../../../../compiler/ir/types";
import { removeTempDirs } from "../../../../helpers/temp";
import { DataType, attr, infer, input, int64s, newModel, op, out, typeOf } from "../build";
import { knownSizeDisagreements, zeros } from "../onnxruntime-comparison";

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
    // x[1:] is empty, not -1 long, when the sequence is empty.
    expect(typeOf(out(slice))).toBe("FLOAT[batch,max(0,sequence-1),64]");
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

describe("Slice on a symbolic axis", () => {
  afterAll(removeTempDirs);

  // The axis "seq" is 2 at run time, shorter than the constant bounds.
  const cases: [string, number, number][] = [
    ["end 1000", 0, 1000],
    ["start -4", -4, 2 ** 62],
    ["start 3", 3, 2 ** 62],
  ];

  it.each(cases)("slice %s", async (_name, start, end) => {
    const build = (): Model => {
      const model = newModel({ "": 17 });
      const x = input(model.graph, "x", DataType.FLOAT, ["seq", 6]);
      op(model.graph, "Slice", [x, int64s(model.graph, "starts", [start]), int64s(model.graph, "ends", [end]), int64s(model.graph, "axes", [0])]);
      return model;
    };
    expect(await knownSizeDisagreements(build, { x: zeros([2, 6]) }, { seq: 2 })).toEqual([]);
  });

  it("slice keeps declared output dim", () => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, ["seq", 6]);
    const sliced = out(op(model.graph, "Slice", [x, int64s(model.graph, "starts", [0]), int64s(model.graph, "ends", [1000]), int64s(model.graph, "axes", [0])]));
    sliced.type = tensorType(DataType.FLOAT, ["seq", 6]);
    model.graph.addOutput(sliced);

    const report = inferShapes(model);

    // x[0:1000] has seq rows whenever seq <= 1000, so the declared name is right and 1000 is a guess.
    const replaced = sliced.type?.kind === "tensor" && sliced.type.shape?.[0] === 1000;
    expect({ replaced, conflicts: report.conflicts.length }).not.toEqual({ replaced: true, conflicts: 0 });
  });

  it("names clamped lengths", () => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, ["seq"]);
    const bounds = [[0, 1000], [-4, 2 ** 62], [3, 2 ** 62], [1, -1], [-5, -2]];
    const values = bounds.map(([start, end], i) => out(op(model.graph, "Slice", [x, int64s(model.graph, `start_${i}`, [start]), int64s(model.graph, `end_${i}`, [end])])));
    infer(model);
    expect(values.map(typeOf)).toEqual(["FLOAT[min(1000,seq)]", "FLOAT[min(4,seq)]", "FLOAT[max(0,seq-3)]", "FLOAT[max(0,seq-2)]", "FLOAT[min(3,max(0,seq-2))]"]);
  });

  // Constant bounds (start, end, step) on an axis of every length from 0 to 9.
  const bounds: [number, number, number][] = [
    [0, 1000, 1], [-4, 2 ** 62, 1], [3, 2 ** 62, 1], [1, -1, 1], [-3, 5, 1], [-5, -2, 1], [2, 6, 1], [0, -1, 1],
    [-1, 2 ** 62, 1], [1, 2 ** 62, 2], [-4, 2 ** 62, 3], [2, 7, 2], [-6, 3, 2], [4, 2, 1], [-(2 ** 62), 3, 1], [0, -(2 ** 62), 1],
  ];

  it.each([0, 1, 2, 3, 5, 9])("constant bounds at seq %i", async (length) => {
    const build = (): Model => {
      const model = newModel({ "": 17 });
      const x = input(model.graph, "x", DataType.FLOAT, ["seq", 2]);
      bounds.forEach(([start, end, step], i) => {
        const inputs = [x, int64s(model.graph, `starts_${i}`, [start]), int64s(model.graph, `ends_${i}`, [end]), int64s(model.graph, `axes_${i}`, [0]), int64s(model.graph, `steps_${i}`, [step])];
        op(model.graph, "Slice", inputs);
      });
      return model;
    };
    const inferred = build();
    inferShapes(inferred);
    const lengths = inferred.graph.nodes.map((node) => (node.outputs[0].type?.kind === "tensor" ? node.outputs[0].type.shape?.[0] : undefined));
    expect(lengths.filter((length) => length === null || length === undefined)).toEqual([]);
    expect(await knownSizeDisagreements(build, { x: zeros([length, 2]) }, { seq: length })).toEqual([]);
  });
});
