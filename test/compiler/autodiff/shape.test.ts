import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6; these ops are linear, so the only error is rounding.
const FLOAT64_TOLERANCE = 1e-7;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("reshape-like gradients", () => {
  test("Reshape with 0 and -1 in the shape", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3, 4] }], (ops, { x }) => ops.op("Reshape", [x, ops.ints([0, -1])]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Flatten at axis 2", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3, 4] }], (ops, { x }) => ops.op("Flatten", [x], [attr.int("axis", 2)]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Squeeze of a size-1 axis", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 1, 3] }], (ops, { x }) => ops.op("Squeeze", [x, ops.ints([1])]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Unsqueeze at the front and back", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3] }], (ops, { x }) => ops.op("Unsqueeze", [x, ops.ints([0, -1])]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});

describe("transpose gradients", () => {
  test("Transpose with the default perm", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3, 4] }], (ops, { x }) => ops.op("Transpose", [x]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Transpose with a cyclic perm", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3, 4] }], (ops, { x }) => ops.op("Transpose", [x], [attr.ints("perm", [1, 2, 0])]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});

describe("expand and tile gradients", () => {
  test("Expand with broadcasting on both sides", async () => {
    // x [3, 1] against shape [2, 1, 4]: a leading axis is added, axis 2 is broadcast, and the 1 in the shape keeps x's 3.
    const result = await gradCheck([{ name: "x", dims: [3, 1] }], (ops, { x }) => ops.op("Expand", [x, ops.ints([2, 1, 4])]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Expand with an unknown input dim", async () => {
    const result = await gradCheck([{ name: "x", dims: [1, 3] }], (ops, { x }) => {
      x.type = { kind: "tensor", elemType: ops.dtype, shape: [null, 3] };
      const expanded = ops.op("Expand", [x, ops.ints([2, 3])]);
      return ops.op("Reshape", [expanded, ops.ints([2, 3])]);
    });
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Tile with constant repeats", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3] }], (ops, { x }) => ops.op("Tile", [x, ops.ints([2, 3])]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Tile with runtime repeats", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 1, 3] },
        { name: "repeats", dims: [3], values: [2, 4, 1], dtype: "int64" },
      ],
      // The Reshape gives the loss a static shape, which the check needs; the Tile's own output shape is unknown.
      (ops, { x, repeats }) => ops.op("Reshape", [ops.op("Tile", [x, repeats]), ops.ints([4, 4, 3])]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
