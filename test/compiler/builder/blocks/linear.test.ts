import { LinearLayout, linear, tiedLinear } from "../../../../compiler/builder/blocks/linear";
import { AttributeType } from "../../../../compiler/ir/attribute";
import { init } from "../../../../compiler/builder/weights";
import { Value } from "../../../../compiler/ir/value";
import { blockModel, sampleInput } from "../block-model";
import { addRows, matmul, transposed } from "../reference";
import { maxAbsDifference } from "../../../fixtures/run-model";

const IN = 6;
const OUT = 4;
const ROWS = 5;
// Float32 products of a few dozen terms of size ~0.02 round at about 1e-8.
const TOLERANCE = 1e-6;

function linearModel(layout: LinearLayout, bias = true) {
  const rank = layout === "gemm" ? 2 : 3;
  return blockModel(rank, (scope, x) => linear(scope.child("proj"), x, { inFeatures: IN, outFeatures: OUT, layout, bias }).output);
}

/** x · Wᵀ + b for W [OUT, IN], the nn.Linear definition. */
function linearReference(x: Float32Array, weight: Float32Array, bias: Float32Array): Float64Array {
  return addRows(matmul(x, transposed(weight, OUT, IN), ROWS, IN, OUT), bias);
}

describe("linear", () => {
  test("nn.Linear layouts compute x·Wᵀ+b", async () => {
    const x = sampleInput(ROWS * IN);
    const reference = linearModel("transpose");
    const expected = linearReference(x, reference.weight("proj.weight"), reference.weight("proj.bias"));

    for (const layout of ["transpose", "folded"] as const) {
      const output = await linearModel(layout).run(x, [1, ROWS, IN]);
      expect(output.dims).toEqual([1, ROWS, OUT]);
      expect(maxAbsDifference(output.data, expected)).toBeLessThan(TOLERANCE);
    }
    const gemmOutput = await linearModel("gemm").run(x, [ROWS, IN]);
    expect(maxAbsDifference(gemmOutput.data, expected)).toBeLessThan(TOLERANCE);
  });

  test("conv1d computes x·W+b", async () => {
    const x = sampleInput(ROWS * IN);
    const block = linearModel("conv1d");
    const expected = addRows(matmul(x, block.weight("proj.weight"), ROWS, IN, OUT), block.weight("proj.bias"));
    const output = await block.run(x, [1, ROWS, IN]);
    expect(maxAbsDifference(output.data, expected)).toBeLessThan(TOLERANCE);
  });

  test("transpose layout nodes", () => {
    const { model } = linearModel("transpose");
    const [transposeNode, matMulNode, addNode] = model.graph.nodes;
    expect(model.graph.nodes.map((node) => node.name)).toEqual(["/proj/Transpose", "/proj/MatMul", "/proj/Add"]);
    expect(transposeNode.inputs[0]?.name).toBe("proj.weight");
    expect(transposeNode.getInts("perm")).toEqual([1, 0]);
    expect(model.graph.initializers.get("proj.weight")?.initializer?.dims).toEqual([OUT, IN]);
    expect(matMulNode.inputs[1]).toBe(transposeNode.outputs[0]);
    expect(addNode.inputs[0]?.name).toBe("proj.bias");
  });

  test("folded layout stores the transposed weight", () => {
    const block = linearModel("folded");
    const folded = block.model.graph.initializers.get("onnx::MatMul_1");
    expect(folded?.initializer?.dims).toEqual([IN, OUT]);
    expect(block.model.graph.initializers.has("proj.weight")).toBe(false);
    expect(block.model.graph.nodes.map((node) => node.opType)).toEqual(["MatMul", "Add"]);
    expect(folded?.uses[0].node.name).toBe("/proj/MatMul");
    expect(block.model.graph.nodes[1].inputs[0]?.name).toBe("proj.bias");
  });

  test("folded weight equals the transposed Linear weight", () => {
    const folded = linearModel("folded").weight("onnx::MatMul_1");
    const plain = linearModel("transpose").weight("proj.weight");
    expect(Array.from(folded)).toEqual(Array.from(transposed(plain, OUT, IN)));
  });

  test("conv1d layout adds the bias after", () => {
    const { model } = linearModel("conv1d");
    expect(model.graph.initializers.get("proj.weight")?.initializer?.dims).toEqual([IN, OUT]);
    const addNode = model.graph.nodes[1];
    expect(addNode.inputs[0]?.producer?.opType).toBe("MatMul");
    expect(addNode.inputs[1]?.name).toBe("proj.bias");
  });

  test("gemm layout sets transB", () => {
    const { model } = linearModel("gemm");
    const [gemm] = model.graph.nodes;
    expect(gemm.name).toBe("/proj/Gemm");
    expect(gemm.getInt("transB")).toBe(1);
    expect(gemm.attributes.get("alpha")?.type).toBe(AttributeType.FLOAT);
    expect(gemm.inputs.map((input) => input?.name)).toEqual(["x", "proj.weight", "proj.bias"]);
  });

  test("bias false adds no Add", () => {
    for (const layout of ["transpose", "folded", "conv1d"] as const) {
      const { model } = linearModel(layout, false);
      expect(model.graph.nodes.some((node) => node.opType === "Add")).toBe(false);
      expect([...model.graph.initializers.keys()].some((name) => name.endsWith("bias"))).toBe(false);
    }
  });
});

describe("tiedLinear", () => {
  test("tied head reads the embedding through Transpose", async () => {
    const VOCAB = 7;
    let table: Value | undefined;
    const block = blockModel(3, (scope, x) => {
      table = scope.child("wte").parameter("weight", [VOCAB, IN], init.normal(0.02));
      return tiedLinear(scope.child("lm_head"), x, table);
    });
    const transposeNode = block.model.graph.nodes.find((node) => node.opType === "Transpose");
    expect(transposeNode?.name).toBe("/lm_head/Transpose");
    expect(transposeNode?.inputs[0]).toBe(table);

    const x = sampleInput(ROWS * IN);
    const output = await block.run(x, [1, ROWS, IN]);
    const expected = matmul(x, transposed(block.weight("wte.weight"), VOCAB, IN), ROWS, IN, VOCAB);
    expect(maxAbsDifference(output.data, expected)).toBeLessThan(TOLERANCE);
  });
});
