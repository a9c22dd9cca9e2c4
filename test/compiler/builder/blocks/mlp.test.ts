import { swigluMlp } from "../../../../compiler/builder/blocks/mlp";
import { blockModel, sampleInput } from "../block-model";
import { matmul, silu, transposed } from "../reference";
import { maxAbsDifference } from "../../../fixtures/run-model";

const HIDDEN = 6;
const INTERMEDIATE = 10;
const ROWS = 4;

describe("swigluMlp", () => {
  const mlpModel = () => blockModel(3, (scope, x) => swigluMlp(scope.child("mlp"), x, { hidden: HIDDEN, intermediate: INTERMEDIATE, layout: "transpose", bias: false }));

  test("computes down(silu(gate(x)) · up(x))", async () => {
    const block = mlpModel();
    const x = sampleInput(ROWS * HIDDEN, 9);
    const project = (input: ArrayLike<number>, name: string, inFeatures: number, outFeatures: number) =>
      matmul(input, transposed(block.weight(name), outFeatures, inFeatures), ROWS, inFeatures, outFeatures);
    const gate = project(x, "mlp.gate_proj.weight", HIDDEN, INTERMEDIATE);
    const up = project(x, "mlp.up_proj.weight", HIDDEN, INTERMEDIATE);
    const gated = gate.map((value, i) => silu(value) * up[i]);
    const expected = project(gated, "mlp.down_proj.weight", INTERMEDIATE, HIDDEN);

    const output = await block.run(x, [1, ROWS, HIDDEN]);
    expect(output.dims).toEqual([1, ROWS, HIDDEN]);
    // With std 0.02 weights the outputs are of order 1e-5, so compare relative to the largest one.
    const scale = Math.max(...expected.map(Math.abs));
    expect(scale).toBeGreaterThan(0);
    expect(maxAbsDifference(output.data, expected) / scale).toBeLessThan(1e-5);
  });

  test("modules carry Hugging Face names", () => {
    const { model } = mlpModel();
    expect([...model.graph.initializers.keys()]).toEqual(["mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"]);
    const names = model.graph.nodes.map((node) => node.name);
    expect(names).toEqual([
      "/mlp/gate_proj/Transpose",
      "/mlp/gate_proj/MatMul",
      "/mlp/act_fn/Sigmoid",
      "/mlp/act_fn/Mul",
      "/mlp/up_proj/Transpose",
      "/mlp/up_proj/MatMul",
      "/mlp/Mul",
      "/mlp/down_proj/Transpose",
      "/mlp/down_proj/MatMul",
    ]);
  });
});
