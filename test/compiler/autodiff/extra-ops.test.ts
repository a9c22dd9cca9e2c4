import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

// float64 central differences with a step of 1e-6 are accurate to about 1e-9 for these smooth ops.
const FLOAT64_TOLERANCE = 1e-7;
// float32 contrib kernels: a step of 1e-3 leaves about 1e-4 of rounding in each slope.
const FLOAT32_TOLERANCE = 2e-3;
const MICROSOFT = { "com.microsoft": 1 };

describe("trigonometric gradients", () => {
  test.each(["Sin", "Cos"])("%s", async (op) => {
    const result = await gradCheck([{ name: "x", dims: [2, 3] }], (ops, { x }) => ops.op(op, [x]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});

describe("contrib op gradients", () => {
  test.each([
    [0, 0],
    [1, 0],
    [0, 1],
    [1, 1],
  ])("FusedMatMul transA=%i transB=%i", async (transA, transB) => {
    const result = await gradCheck(
      [
        { name: "a", dims: transA ? [2, 4, 3] : [2, 3, 4] },
        { name: "b", dims: transB ? [5, 4] : [4, 5] },
      ],
      (ops, { a, b }) => ops.op("FusedMatMul", [a, b], [attr.int("transA", transA), attr.int("transB", transB), attr.float("alpha", 0.5)], 1, "com.microsoft"),
      { dtype: "float32", epsilon: 1e-3, domains: MICROSOFT },
    );
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });

  test("BiasGelu", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "bias", dims: [4] },
      ],
      (ops, { x, bias }) => ops.op("BiasGelu", [x, bias], [], 1, "com.microsoft"),
      { dtype: "float32", epsilon: 1e-3, domains: MICROSOFT },
    );
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });
});

describe("scatter gradients", () => {
  test("ScatterND replaces rows", async () => {
    const result = await gradCheck(
      [
        { name: "data", dims: [4, 3] },
        { name: "indices", dims: [2, 1], values: [3, 1], dtype: "int64" },
        { name: "updates", dims: [2, 3] },
      ],
      (ops, { data, indices, updates }) => ops.op("ScatterND", [data, indices, updates]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
    // The replaced rows of data get no gradient.
    expect(result.analytic.data.slice(3, 6)).toEqual([0, 0, 0]);
  });
});
