import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6 are accurate to about 1e-9 for these smooth ops.
const FLOAT64_TOLERANCE = 1e-7;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("elementwise gradients", () => {
  test.each(["Add", "Sub", "Mul", "Div"])("%s with broadcasting", async (op) => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "y", dims: [3, 1], values: [0.7, -1.3, 1.9] },
      ],
      (ops, { x, y }) => ops.op(op, [x, y]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Mul with a leading broadcast axis and a size-1 axis", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 1, 4] },
        { name: "y", dims: [3, 1] },
      ],
      (ops, { x, y }) => ops.op("Mul", [x, y]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Add with an unknown dim broadcasts at run time", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3] },
        { name: "y", dims: [1, 3] },
      ],
      (ops, { x, y }) => {
        // Hiding y's static shape forces the run-time computation of the broadcast axes.
        y.type = { kind: "tensor", elemType: ops.dtype, shape: [null, 3] };
        return ops.op("Add", [x, y]);
      },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Neg", async () => {
    const result = await gradCheck([{ name: "x", dims: [5] }], (ops, { x }) => ops.op("Neg", [x]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Pow of both operands", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [4], values: [0.5, 1.2, 2.0, 0.9] },
        { name: "p", dims: [1], values: [1.7] },
      ],
      (ops, { x, p }) => ops.op("Pow", [x, p]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Pow with an integer exponent constant", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3] }], (ops, { x }) => ops.op("Pow", [x, ops.scalar(2)]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});

describe("matmul gradients", () => {
  test("MatMul batched against a 2-D weight", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "w", dims: [4, 5] },
      ],
      (ops, { x, w }) => ops.op("MatMul", [x, w]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("MatMul with broadcast batch axes", async () => {
    const result = await gradCheck(
      [
        { name: "a", dims: [2, 1, 3, 4] },
        { name: "b", dims: [3, 4, 2] },
      ],
      (ops, { a, b }) => ops.op("MatMul", [a, b]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test.each([
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ])("Gemm transA=%i transB=%i", async (transA, transB) => {
    const result = await gradCheck(
      [
        { name: "a", dims: transA ? [4, 3] : [3, 4] },
        { name: "b", dims: transB ? [5, 4] : [4, 5] },
        { name: "c", dims: [5] },
      ],
      (ops, { a, b, c }) => ops.op("Gemm", [a, b, c], [attr.int("transA", transA), attr.int("transB", transB), attr.float("alpha", 0.5), attr.float("beta", 2)]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
