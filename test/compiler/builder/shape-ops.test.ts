import { reshape } from "../../../compiler/builder/ops";
import { dimension, shapeOf } from "../../../compiler/builder/shape-ops";
import { blockModel, sampleInput } from "./block-model";

describe("shape arithmetic", () => {
  const splitLastAxis = () => blockModel(3, (scope, x) => reshape(scope, x, shapeOf(scope, [dimension(scope, x, 0), dimension(scope, x, 1), 2, 3])));

  test("reshape keeps batch and sequence dynamic", async () => {
    const block = splitLastAxis();
    for (const [batch, sequence] of [[1, 4], [3, 2]]) {
      const x = sampleInput(batch * sequence * 6);
      const output = await block.run(x, [batch, sequence, 6]);
      expect(output.dims).toEqual([batch, sequence, 2, 3]);
      expect(Array.from(output.data)).toEqual(Array.from(x));
    }
  });

  test("dimension is Shape then Gather of a scalar", () => {
    const { model } = splitLastAxis();
    const gather = model.graph.nodes.find((node) => node.opType === "Gather")!;
    expect(gather.inputs[0]?.producer?.opType).toBe("Shape");
    expect(gather.inputs[1]?.producer?.getTensor("value")?.dims).toEqual([]);
    expect(gather.getInt("axis")).toBe(0);
  });

  test("shapeOf unsqueezes scalars and concatenates", () => {
    const { model } = splitLastAxis();
    const concat = model.graph.nodes.find((node) => node.opType === "Concat")!;
    expect(concat.inputs.map((input) => input?.producer?.opType)).toEqual(["Unsqueeze", "Unsqueeze", "Constant", "Constant"]);
    expect(concat.inputs[2]?.producer?.getTensor("value")?.numbers()).toEqual([2]);
    expect(concat.getInt("axis")).toBe(0);
  });
});
