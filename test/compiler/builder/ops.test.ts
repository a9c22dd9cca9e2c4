import { ModelBuilder } from "../../../compiler/builder/model-builder";
import { concat, constant, floatScalar, int64Vector, reduceMean, slice, split, unsqueeze } from "../../../compiler/builder/ops";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { blockModel } from "./block-model";

describe("op helpers", () => {
  test("constants hold typed scalars and vectors", () => {
    const builder = new ModelBuilder({ opset: 17 });
    const scalar = floatScalar(builder.root, 0.5).producer!.getTensor("value")!;
    const vector = int64Vector(builder.root, [1, -1]).producer!.getTensor("value")!;
    expect([scalar.dtype, scalar.dims, scalar.numbers()]).toEqual([DataType.FLOAT, [], [0.5]]);
    expect([vector.dtype, vector.dims, vector.numbers()]).toEqual([DataType.INT64, [2], [1, -1]]);
    expect(constant(builder.root, Tensor.fromArray("", DataType.FLOAT, [1], Float32Array.of(2))).producer?.name).toBe("/Constant_2");
  });

  test("split returns one value per piece", async () => {
    const block = blockModel(2, (scope, x) => {
      const [first, second] = split(scope, x, [1, 3], 1);
      expect(first.name).toBe("/Split_output_0");
      return concat(scope, [second, first], 1);
    });
    const output = await block.run(Float32Array.of(1, 2, 3, 4), [1, 4]);
    expect(Array.from(output.data)).toEqual([2, 3, 4, 1]);
  });

  test("slice and unsqueeze take constant inputs", async () => {
    const block = blockModel(2, (scope, x) => unsqueeze(scope, slice(scope, x, [1], [3], [-1]), [0]));
    const output = await block.run(Float32Array.of(1, 2, 3, 4), [1, 4]);
    expect(output.dims).toEqual([1, 1, 2]);
    expect(Array.from(output.data)).toEqual([2, 3]);
  });

  test("reduceMean follows the opset", async () => {
    for (const opset of [17, 18]) {
      const block = blockModel(2, (scope, x) => reduceMean(scope, x, [-1], false), { opset });
      const reduce = block.model.graph.nodes.find((node) => node.opType === "ReduceMean")!;
      expect(reduce.attributes.has("axes")).toBe(opset < 18);
      expect(reduce.inputs.length).toBe(opset < 18 ? 1 : 2);
      const output = await block.run(Float32Array.of(1, 2, 3, 6), [2, 2]);
      expect(Array.from(output.data)).toEqual([1.5, 4.5]);
    }
  });
});
