import { LayerNormForm, layerNorm, rmsNorm } from "../../../../compiler/builder/blocks/norms";
import { blockModel, sampleInput } from "../block-model";
import { layerNormRow, mapRows, rmsNormRow } from "../reference";
import { maxAbsDifference } from "../../../fixtures/run-model";

const HIDDEN = 8;
const ROWS = 6;
// Normalized outputs are of order 1, and float32 rounding keeps them within about 1e-6.
const TOLERANCE = 1e-5;

function layerNormModel(form: LayerNormForm, opset: number) {
  return blockModel(3, (scope, x) => layerNorm(scope.child("ln_1"), x, { hidden: HIDDEN, epsilon: 1e-5, form }), { opset });
}

describe("layerNorm", () => {
  test("both forms match nn.LayerNorm", async () => {
    const x = sampleInput(ROWS * HIDDEN);
    for (const [form, opset] of [["decomposed", 14], ["decomposed", 18], ["op", 17]] as const) {
      const block = layerNormModel(form, opset);
      const expected = mapRows(x, HIDDEN, (row) => layerNormRow(row, block.weight("ln_1.weight"), block.weight("ln_1.bias"), 1e-5));
      const output = await block.run(x, [2, 3, HIDDEN]);
      expect(output.dims).toEqual([2, 3, HIDDEN]);
      expect(maxAbsDifference(output.data, expected)).toBeLessThan(TOLERANCE);
    }
  });

  test("decomposed form has the torch.onnx op sequence", () => {
    const { model } = layerNormModel("decomposed", 14);
    const ops = model.graph.nodes.filter((node) => node.opType !== "Constant").map((node) => node.opType);
    expect(ops).toEqual(["ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"]);
    expect(model.graph.nodes[0].name).toBe("/ln_1/ReduceMean");
    expect(model.graph.nodes[0].getInts("axes")).toEqual([-1]);
  });

  test("opset 18 passes ReduceMean axes as an input", () => {
    const { model } = layerNormModel("decomposed", 18);
    const reduce = model.graph.nodes.find((node) => node.opType === "ReduceMean")!;
    expect(reduce.attributes.has("axes")).toBe(false);
    expect(reduce.inputs[1]?.producer?.opType).toBe("Constant");
  });

  test("op form is one LayerNormalization", () => {
    const { model } = layerNormModel("op", 17);
    expect(model.graph.nodes.map((node) => node.opType)).toEqual(["LayerNormalization"]);
    const [node] = model.graph.nodes;
    expect(node.inputs.map((input) => input?.name)).toEqual(["x", "ln_1.weight", "ln_1.bias"]);
    expect(node.getFloat("epsilon")).toBeCloseTo(1e-5, 12);
  });

  test("op form before opset 17 is rejected", () => {
    expect(() => layerNormModel("op", 14)).toThrow(/opset 17/);
  });

  test("weights start near one", () => {
    const weight = layerNormModel("op", 17).weight("ln_1.weight");
    for (const value of weight) expect(Math.abs(value - 1)).toBeLessThan(0.2);
    expect(new Set(weight).size).toBeGreaterThan(1);
  });
});

describe("rmsNorm", () => {
  const rmsModel = () => blockModel(3, (scope, x) => rmsNorm(scope.child("input_layernorm"), x, { hidden: HIDDEN, epsilon: 1e-6 }));

  test("matches LLaMA's RMSNorm", async () => {
    const x = sampleInput(ROWS * HIDDEN, 3);
    const block = rmsModel();
    const expected = mapRows(x, HIDDEN, (row) => rmsNormRow(row, block.weight("input_layernorm.weight"), 1e-6));
    const output = await block.run(x, [1, ROWS, HIDDEN]);
    expect(maxAbsDifference(output.data, expected)).toBeLessThan(TOLERANCE);
  });

  test("has the torch.onnx op sequence", () => {
    const { model } = rmsModel();
    const ops = model.graph.nodes.filter((node) => node.opType !== "Constant").map((node) => node.opType);
    expect(ops).toEqual(["Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Mul"]);
    const last = model.graph.nodes[model.graph.nodes.length - 1];
    expect(last.inputs[0]?.name).toBe("input_layernorm.weight");
    expect(model.graph.initializers.size).toBe(1);
  });
});
