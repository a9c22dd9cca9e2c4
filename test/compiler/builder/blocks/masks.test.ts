import { MASKED_SCORE, causalAttentionMask, paddingAttentionMask } from "../../../../compiler/builder/blocks/masks";
import { ModelBuilder, Scope } from "../../../../compiler/builder/model-builder";
import { dimension } from "../../../../compiler/builder/shape-ops";
import { Value } from "../../../../compiler/ir/value";
import { DataType } from "../../../../compiler/onnx/dtype";
import { createSession, int64Tensor, run } from "../../../fixtures/run-model";

const ATTENTION_MASK = [
  [1, 1, 1, 1],
  [1, 1, 0, 0],
];
const MIN = Math.fround(MASKED_SCORE);

async function maskValues(build: (scope: Scope, attentionMask: Value) => Value): Promise<{ data: number[]; dims: readonly number[] }> {
  const builder = new ModelBuilder({ opset: 14 });
  const attentionMask = builder.input("attention_mask", DataType.INT64, ["batch", "sequence"]);
  builder.output(build(builder.root, attentionMask), "mask", DataType.FLOAT);
  const session = await createSession(builder.finish());
  const output = (await run(session, { attention_mask: int64Tensor(ATTENTION_MASK) })).mask;
  // Map -0 to 0 so that allowed entries compare equal to 0.
  return { data: Array.from(output.data, (value) => value + 0), dims: output.dims };
}

describe("attention masks", () => {
  test("causal mask blocks future and padded keys", async () => {
    const mask = await maskValues((scope, attentionMask) => causalAttentionMask(scope, attentionMask, dimension(scope, attentionMask, 1)));
    expect(mask.dims).toEqual([2, 1, 4, 4]);
    const expected: number[] = [];
    for (const row of ATTENTION_MASK) {
      for (let query = 0; query < 4; query++) {
        for (let key = 0; key < 4; key++) expected.push(key <= query && row[key] === 1 ? 0 : MIN);
      }
    }
    expect(mask.data).toEqual(expected);
  });

  test("padding mask blocks padded keys", async () => {
    const mask = await maskValues(paddingAttentionMask);
    expect(mask.dims).toEqual([2, 1, 1, 4]);
    expect(mask.data).toEqual(ATTENTION_MASK.flat().map((value) => (value === 1 ? 0 : MIN)));
  });

  test("masked score is the lowest float32", () => {
    expect(MASKED_SCORE).toBe(-3.4028234663852886e38);
    expect(Math.fround(MASKED_SCORE)).toBe(MASKED_SCORE);
  });
});
