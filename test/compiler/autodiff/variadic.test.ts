import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6 are accurate to about 1e-9 for these piecewise linear ops.
const FLOAT64_TOLERANCE = 1e-7;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("variadic gradients", () => {
  test.each(["Sum", "Max", "Min"])("%s of three inputs with broadcasting", async (op) => {
    const result = await gradCheck(
      [
        { name: "a", dims: [2, 3, 4] },
        { name: "b", dims: [3, 1] },
        { name: "c", dims: [4] },
      ],
      (ops, { a, b, c }) => ops.op(op, [a, b, c]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  // onnxruntime 1.31 has no float64 CPU kernel for Mean, so this runs in float32 with a step of 1e-3:
  // Mean is linear, so the only error is the loss's float32 rounding over the step, measured at 4e-5.
  test("Mean of three inputs with broadcasting in float32", async () => {
    const result = await gradCheck(
      [
        { name: "a", dims: [2, 3, 4] },
        { name: "b", dims: [3, 1] },
        { name: "c", dims: [4] },
      ],
      (ops, { a, b, c }) => ops.op("Mean", [a, b, c]),
      { dtype: "float32", epsilon: 1e-3 },
    );
    expect(result.maxError).toBeLessThan(2e-3);
  });

  test.each(["Sum", "Max"])("%s of one input", async (op) => {
    const result = await gradCheck([{ name: "a", dims: [2, 3] }], (ops, { a }) => ops.op(op, [a]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  // A central difference across a tie of two inputs measures (1 + 0) / 2, the even split the rule gives.
  test.each(["Max", "Min"])("%s splits a tie of two inputs evenly", async (op) => {
    const result = await gradCheck(
      [
        { name: "a", dims: [3], values: [0.5, -0.2, 0.9] },
        { name: "b", dims: [3], values: [0.5, 0.4, 0.9] },
      ],
      (ops, { a, b }) => ops.op(op, [a, b]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
    expect(result.analytic.a[0]).toBeCloseTo(result.analytic.b[0], 12);
  });

  test("Max splits a tie of three inputs in thirds", async () => {
    const result = await gradCheck(
      [
        { name: "a", dims: [2], values: [0.5, 0.1] },
        { name: "b", dims: [2], values: [0.5, 0.2] },
        { name: "c", dims: [2], values: [0.5, 0.9] },
      ],
      (ops, { a, b, c }) => ops.op("Max", [a, b, c]),
    );
    // Raising one of three tied inputs raises the output and lowering it does not, so each central
    // difference at the tie is half the cotangent, and a third of the cotangent is 2/3 of it.
    const third = (2 / 3) * result.numeric.a[0];
    expect(result.analytic.a[0]).toBeCloseTo(third, 6);
    expect(result.analytic.b[0]).toBeCloseTo(third, 6);
    expect(result.analytic.c[0]).toBeCloseTo(third, 6);
    // The untied second element goes to c alone.
    expect(Math.abs(result.analytic.a[1])).toBe(0);
    expect(Math.abs(result.analytic.b[1])).toBe(0);
    expect(Math.abs(result.analytic.c[1] - result.numeric.c[1])).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Where with a broadcast condition and operands", async () => {
    const result = await gradCheck(
      [
        { name: "condition", dims: [3, 1], values: [1, 0, 1], dtype: "bool" },
        { name: "x", dims: [2, 3, 4] },
        { name: "y", dims: [4] },
      ],
      (ops, { condition, x, y }) => ops.op("Where", [condition, x, y]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
