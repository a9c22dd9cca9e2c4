import { embedding } from "../../../../compiler/builder/blocks/embedding";
import { cast } from "../../../../compiler/builder/ops";
import { DataType } from "../../../../compiler/onnx/dtype";
import { blockModel } from "../block-model";

describe("embedding", () => {
  test("Gather returns the indexed rows", async () => {
    const block = blockModel(2, (scope, x) => embedding(scope.child("wte"), cast(scope, x, DataType.INT64), { count: 5, dim: 3 }).output);
    expect(block.model.graph.nodes[1].name).toBe("/wte/Gather");

    const output = await block.run(Float32Array.of(4, 0, 2), [1, 3]);
    const table = block.weight("wte.weight");
    expect(output.dims).toEqual([1, 3, 3]);
    expect(Array.from(output.data)).toEqual([...table.slice(12, 15), ...table.slice(0, 3), ...table.slice(6, 9)]);
  });

  test("table takes the module name", () => {
    const block = blockModel(2, (scope, x) => embedding(scope.child("model", "embed_tokens"), cast(scope, x, DataType.INT64), { count: 5, dim: 3 }).output);
    expect(block.model.graph.initializers.get("model.embed_tokens.weight")?.initializer?.dims).toEqual([5, 3]);
  });
});
