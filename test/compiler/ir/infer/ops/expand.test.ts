import { inferShapes } from "../../../../../compiler/ir/infer";
import { DataType, attr, constant, infer, input, int64s, newModel, op, out, typeOf } from "../build";

describe("Expand, Tile and Pad", () => {
  it("expands to a shape read from another tensor", () => {
    const model = newModel();
    const positions = input(model.graph, "positions", DataType.INT64, [1, "sequence"]);
    const ids = input(model.graph, "ids", DataType.INT64, ["batch", "sequence"]);
    const expand = op(model.graph, "Expand", [positions, out(op(model.graph, "Shape", [ids]))]);
    infer(model);
    expect(typeOf(out(expand))).toBe("INT64[batch,sequence]");
  });

  it("expands against target values of 1", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 1, "sequence"]);
    const expand = op(model.graph, "Expand", [x, int64s(model.graph, "target", [1, 4, 1])]);
    infer(model);
    expect(typeOf(out(expand))).toBe("FLOAT[batch,4,sequence]");
  });

  it("multiplies sizes with Tile", () => {
    const model = newModel();
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 3]);
    const tile = op(model.graph, "Tile", [x, int64s(model.graph, "repeats", [2, 4])]);
    infer(model);
    expect(typeOf(out(tile))).toBe("FLOAT[2*batch,12]");
  });

  it("reads pads from the attribute before opset 11 and from an input after", () => {
    const old = newModel({ "": 9 });
    const padOld = op(old.graph, "Pad", [input(old.graph, "x", DataType.FLOAT, ["n", 4])], { attributes: [attr.ints("pads", [0, 1, 0, 2])] });
    infer(old);
    expect(typeOf(out(padOld))).toBe("FLOAT[n,7]");

    const current = newModel({ "": 18 });
    const x = input(current.graph, "x", DataType.FLOAT, ["n", 4, 5]);
    const padNew = op(current.graph, "Pad", [x, int64s(current.graph, "pads", [1, 2, 3, 4]), undefined, int64s(current.graph, "axes", [0, 2])]);
    infer(current);
    expect(typeOf(out(padNew))).toBe("FLOAT[n+4,4,11]");
  });

  it("expand negative target reported", () => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, [1]);
    op(model.graph, "Expand", [x, int64s(model.graph, "target", [-1])]);

    let report: ReturnType<typeof inferShapes> | undefined;
    expect(() => (report = inferShapes(model))).not.toThrow();
    expect(report?.failures).toHaveLength(1);
  });

  // Target shapes and repeats computed at run time can hold any number in a broken graph.
  it.each([
    ["Expand", "fractional", [2.5]],
    ["Expand", "NaN", [NaN]],
    ["Expand", "infinite", [Infinity]],
    ["Tile", "negative", [-2]],
    ["Tile", "fractional", [1.5]],
  ])("%s %s values reported", (opType, _name, values) => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, [1]);
    const node = op(model.graph, opType, [x, constant(model.graph, "values", DataType.DOUBLE, [1], values)], { name: "broken" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["broken"]);
    expect(report.failures[0]?.message).toMatch(/has the value/);
    expect(out(node).type).toBeUndefined();
  });

  it("pads removing too much reported", () => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT, [2, 3]);
    op(model.graph, "Pad", [x, int64s(model.graph, "pads", [0, -3, 0, -1])], { name: "crop" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["crop"]);
  });
});
