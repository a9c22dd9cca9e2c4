import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6 are accurate to about 1e-9 for these smooth ops.
const FLOAT64_TOLERANCE = 1e-7;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("softmax gradients", () => {
  test.each([
    ["Softmax", 0],
    ["Softmax", 1],
    ["Softmax", -1],
    ["LogSoftmax", 0],
    ["LogSoftmax", 1],
    ["LogSoftmax", -1],
  ])("%s axis=%i", async (op, axis) => {
    const result = await gradCheck([{ name: "x", dims: [2, 3, 4] }], (ops, { x }) => ops.op(op as string, [x], [attr.int("axis", axis as number)]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test.each(["Softmax", "LogSoftmax"])("%s default axis", async (op) => {
    const result = await gradCheck([{ name: "x", dims: [3, 5] }], (ops, { x }) => ops.op(op, [x]), { opset: 13 });
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
