import { inferShapes } from "../../../../../compiler/ir/infer";
import { Dim } from "../../../../../compiler/ir/types";
import { DataType, attr, constant, input, int64s, newModel, op, out } from "../build";

/** Infers a Cast of `source` to `to` and returns the values inference tracked for its output. */
function castValues(to: DataType, build: (model: ReturnType<typeof newModel>) => ReturnType<typeof int64s>): readonly Dim[] {
  const model = newModel({ "": 17 });
  const cast = op(model.graph, "Cast", [build(model)], { attributes: [attr.int("to", to)] });
  const report = inferShapes(model);
  return report.inferred.find((entry) => entry.value === out(cast).name)?.values ?? [];
}

describe("known values", () => {
  // Cast to a narrower integer type wraps modulo 2^bits in onnxruntime 1.31.
  const cases: [string, DataType, number[], number[]][] = [
    ["uint8", DataType.UINT8, [300, -1], [44, 255]],
    ["int32", DataType.INT32, [2 ** 32 + 5], [5]],
  ];

  it.each(cases)("cast to %s wraps", (_name, to, values, expected) => {
    const model = newModel({ "": 17 });
    const cast = op(model.graph, "Cast", [int64s(model.graph, "k", values)], { attributes: [attr.int("to", to)] });

    const report = inferShapes(model);
    const entry = report.inferred.find((each) => each.value === out(cast).name);

    const known = entry?.values ?? [];
    const wrong = known.filter((value, i) => value !== null && value !== expected[i]);
    expect(wrong).toEqual([]);
  });

  // Expected values as onnxruntime 1.31 returns them from int64 [300, -1, 2^32 + 5, -129, 2049, 65537].
  it.each([
    ["int8", DataType.INT8, [44, -1, 5, 127, 1, 1]],
    ["uint16", DataType.UINT16, [300, 65535, 5, 65407, 2049, 1]],
    ["uint32", DataType.UINT32, [300, 4294967295, 5, 4294967167, 2049, 65537]],
    ["float16", DataType.FLOAT16, [300, -1, Infinity, -129, 2048, Infinity]],
    ["bool", DataType.BOOL, [1, 1, 1, 1, 1, 1]],
  ])("int64 to %s", (_name, to, expected) => {
    expect(castValues(to, (model) => int64s(model.graph, "k", [300, -1, 2 ** 32 + 5, -129, 2049, 65537]))).toEqual(expected);
  });

  it("float to integers truncates", () => {
    // Out-of-range floats, NaN and infinity convert differently across platforms, so they stay unknown.
    const values = [300.7, -1.5, 1e10, NaN, Infinity, -0.5];
    expect(castValues(DataType.INT32, (model) => constant(model.graph, "k", DataType.FLOAT, [6], values))).toEqual([300, -1, null, null, null, 0]);
    expect(castValues(DataType.UINT8, (model) => constant(model.graph, "k", DataType.FLOAT, [6], values))).toEqual([null, null, null, null, null, 0]);
  });

  it("float to float16 rounds", () => {
    const values = [300.7, -1.5, 1e10, -0.5];
    expect(castValues(DataType.FLOAT16, (model) => constant(model.graph, "k", DataType.FLOAT, [4], values))).toEqual([300.75, -1.5, Infinity, -0.5]);
  });

  it("symbolic values narrow to unknown", () => {
    const model = newModel({ "": 17 });
    const shape = op(model.graph, "Shape", [input(model.graph, "x", DataType.FLOAT, ["batch", 4])]);
    const narrow = op(model.graph, "Cast", [out(shape)], { attributes: [attr.int("to", DataType.UINT8)] });
    const wide = op(model.graph, "Cast", [out(shape)], { attributes: [attr.int("to", DataType.INT32)] });
    const report = inferShapes(model);
    const values = (value: ReturnType<typeof out>) => report.inferred.find((entry) => entry.value === value.name)?.values;
    expect(values(out(narrow))).toEqual([null, 4]);
    expect(values(out(wide))).toEqual(["batch", 4]);
  });
});
