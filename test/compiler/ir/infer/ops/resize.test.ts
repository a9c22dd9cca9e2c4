import * as ort from "onnxruntime-node";
import { Model } from "../../../../../compiler/ir/model";
import { removeTempDirs } from "../../../../helpers/temp";
import { DataType, attr, constant, infer, input, int64s, newModel, op, out, typeOf } from "../build";
import { knownSizeDisagreements, zeros } from "../onnxruntime-comparison";

describe("Resize", () => {
  afterAll(removeTempDirs);

  it("resizes with scales and with sizes", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, [1, 3, 8, 8]);
    const scales = constant(model.graph, "scales", DataType.FLOAT, [4], [1, 1, 2, 0.5]);
    const byScale = op(model.graph, "Resize", [x, undefined, scales]);
    const bySize = op(model.graph, "Resize", [x, undefined, undefined, int64s(model.graph, "sizes", [1, 3, 5, 7])]);
    infer(model);
    expect(typeOf(out(byScale))).toBe("FLOAT[1,3,16,4]");
    expect(typeOf(out(bySize))).toBe("FLOAT[1,3,5,7]");
  });

  it("resize empty scales runtime sizes", async () => {
    // Empty roi and scales with the sizes known only at run time, a valid Resize-13 node.
    const build = (): Model => {
      const model = newModel({ "": 13 });
      const g = model.graph;
      const x = input(g, "x", DataType.FLOAT, ["batch", 3, "height", "width"]);
      const sizes = input(g, "sizes", DataType.INT64, [4]);
      op(g, "Resize", [x, constant(g, "roi", DataType.FLOAT, [0], []), constant(g, "scales", DataType.FLOAT, [0], []), sizes]);
      return model;
    };
    const feeds = { x: zeros([1, 3, 4, 4]), sizes: new ort.Tensor("int64", BigInt64Array.from([1n, 3n, 8n, 6n]), [4]) };
    expect(await knownSizeDisagreements(build, feeds, { batch: 1, height: 4, width: 4 })).toEqual([]);
  });

  it("resize keep_aspect_ratio_policy", async () => {
    const build = (): Model => {
      const model = newModel({ "": 18 });
      const x = input(model.graph, "x", DataType.FLOAT, [1, 1, 4, 8]);
      op(model.graph, "Resize", [x, undefined, undefined, int64s(model.graph, "sizes", [6, 6])], {
        attributes: [attr.ints("axes", [2, 3]), attr.string("keep_aspect_ratio_policy", "not_larger")],
      });
      return model;
    };
    expect(await knownSizeDisagreements(build, { x: zeros([1, 1, 4, 8]) }, {})).toEqual([]);
  });

  // Input height and width, requested sizes, and the sizes onnxruntime 1.31 returns for each policy.
  const policies: [number, number, number[], Record<string, number[]>][] = [
    [4, 8, [6, 6], { stretch: [6, 6], not_larger: [3, 6], not_smaller: [6, 12] }],
    [3, 7, [5, 5], { stretch: [5, 5], not_larger: [2, 5], not_smaller: [5, 12] }],
    [7, 3, [2, 2], { stretch: [2, 2], not_larger: [2, 1], not_smaller: [5, 2] }],
    [5, 5, [7, 3], { stretch: [7, 3], not_larger: [3, 3], not_smaller: [7, 7] }],
  ];

  it.each(policies)("aspect policies for %ix%i", (height, width, sizes, expected) => {
    for (const [policy, [outHeight, outWidth]] of Object.entries(expected)) {
      const model = newModel({ "": 18 });
      const x = input(model.graph, "x", DataType.FLOAT, [1, 1, height, width]);
      const resize = op(model.graph, "Resize", [x, undefined, undefined, int64s(model.graph, "sizes", sizes)], {
        attributes: [attr.ints("axes", [2, 3]), attr.string("keep_aspect_ratio_policy", policy)],
      });
      infer(model);
      expect([policy, typeOf(out(resize))]).toEqual([policy, `FLOAT[1,1,${outHeight},${outWidth}]`]);
    }
  });

  it("scales in float32", () => {
    // 0.7 as float32 is 0.699999988, and onnxruntime multiplies in float32: 10 * 0.7 rounds up to 7.
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, [1, 1, 10, 100]);
    const resize = op(model.graph, "Resize", [x, undefined, constant(model.graph, "scales", DataType.FLOAT, [4], [1, 1, 0.7, 0.29])]);
    infer(model);
    expect(typeOf(out(resize))).toBe("FLOAT[1,1,7,29]");
  });

  it("scales listed axes", () => {
    const model = newModel({ "": 18 });
    const x = input(model.graph, "x", DataType.FLOAT, [1, 2, 4, 8]);
    const resize = op(model.graph, "Resize", [x, undefined, constant(model.graph, "scales", DataType.FLOAT, [2], [0.5, 1.5])], { attributes: [attr.ints("axes", [3, 1])] });
    infer(model);
    expect(typeOf(out(resize))).toBe("FLOAT[1,3,4,4]");
  });

  it("runtime scales leave sizes unknown", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, ["batch", 3, 8, 8]);
    const resize = op(model.graph, "Resize", [x, undefined, input(model.graph, "scales", DataType.FLOAT, [4])]);
    const report = infer(model);
    expect(typeOf(out(resize))).toBe("FLOAT[?,?,?,?]");
    expect(report.failures).toEqual([]);
  });

  it("rejects scales and sizes together", () => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, [1, 3, 8, 8]);
    const scales = constant(model.graph, "scales", DataType.FLOAT, [4], [1, 1, 2, 2]);
    op(model.graph, "Resize", [x, undefined, scales, int64s(model.graph, "sizes", [1, 3, 16, 16])], { name: "both" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["both"]);
    expect(report.failures[0]?.message).toMatch(/both scales and sizes/);
  });

  it.each([
    ["negative size", [1, 3, -1, 8]],
    ["fractional size", [1, 3, 2.5, 8]],
  ])("rejects a %s", (_name, sizes) => {
    const model = newModel({ "": 13 });
    const x = input(model.graph, "x", DataType.FLOAT, [1, 3, 8, 8]);
    op(model.graph, "Resize", [x, undefined, undefined, constant(model.graph, "sizes", DataType.DOUBLE, [4], sizes)], { name: "resize" });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["resize"]);
  });
});
