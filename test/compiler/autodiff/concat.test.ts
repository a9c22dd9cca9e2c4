import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6; these ops are linear, so the only error is rounding.
const FLOAT64_TOLERANCE = 1e-7;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("concat gradients", () => {
  test("Concat along axis 0 with different sizes", async () => {
    const result = await gradCheck(
      [
        { name: "a", dims: [2, 3] },
        { name: "b", dims: [4, 3] },
        { name: "c", dims: [1, 3] },
      ],
      (ops, { a, b, c }) => ops.op("Concat", [a, b, c], [attr.int("axis", 0)]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Concat along axis -1 with different sizes", async () => {
    const result = await gradCheck(
      [
        { name: "a", dims: [2, 3] },
        { name: "b", dims: [2, 5] },
      ],
      (ops, { a, b }) => ops.op("Concat", [a, b], [attr.int("axis", -1)]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Concat with symbolic sizes reads offsets at run time", async () => {
    const result = await gradCheck(
      [
        { name: "a", dims: [2, 3] },
        { name: "b", dims: [2, 2] },
        { name: "c", dims: [2, 4] },
      ],
      (ops, { a, b, c }) => {
        a.type = { kind: "tensor", elemType: ops.dtype, shape: [2, "width_a"] };
        b.type = { kind: "tensor", elemType: ops.dtype, shape: [2, null] };
        const joined = ops.op("Concat", [a, b, c], [attr.int("axis", 1)]);
        return ops.op("Reshape", [joined, ops.ints([2, 9])]);
      },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Concat with a constant input checks the others", async () => {
    const result = await gradCheck(
      [
        { name: "a", dims: [2, 3] },
        { name: "b", dims: [2, 1] },
      ],
      (ops, { a, b }) => ops.op("Concat", [ops.constant([2, 2], [1, 2, 3, 4]), a, b], [attr.int("axis", 1)]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});

describe("split gradients", () => {
  test("Split with explicit sizes and an unused output", async () => {
    const result = await gradCheck(
      [{ name: "x", dims: [3, 5] }],
      (ops, { x }) => {
        const [first, , last] = ops.node("Split", [x, ops.ints([2, 1, 2])], [attr.int("axis", 1)], 3);
        return ops.op("Mul", [first, last]);
      },
      { opset: 13 },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Split into equal parts with an unused output", async () => {
    const result = await gradCheck(
      [{ name: "x", dims: [6, 2] }],
      (ops, { x }) => {
        const [first, second] = ops.node("Split", [x], [attr.int("axis", 0)], 3);
        return ops.op("Sub", [first, second]);
      },
      { opset: 13 },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Split with num_outputs at opset 18", async () => {
    const result = await gradCheck(
      [{ name: "x", dims: [2, 4] }],
      (ops, { x }) => {
        const [first, second] = ops.node("Split", [x], [attr.int("axis", -1), attr.int("num_outputs", 2)], 2);
        return ops.op("Mul", [first, second]);
      },
      { opset: 18 },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
