import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6; these ops are linear in the data, so the only error is rounding.
const FLOAT64_TOLERANCE = 1e-7;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

// Opset 17 takes the ScatterND / ScatterElements path with reduction "add"; opset 14 takes the one-hot path.
const OPSETS = [14, 17];

describe.each(OPSETS)("gather gradients at opset %i", (opset) => {
  test("Gather rows with 2-D repeated indices", async () => {
    const result = await gradCheck(
      [
        { name: "table", dims: [5, 3] },
        { name: "ids", dims: [2, 3], values: [0, 2, 2, 4, 2, 0], dtype: "int64" },
      ],
      (ops, { table, ids }) => ops.op("Gather", [table, ids]),
      { opset },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Gather repeated rows adds their gradients", async () => {
    const result = await gradCheck(
      [
        { name: "table", dims: [3, 2] },
        { name: "ids", dims: [3], values: [1, 1, 1], dtype: "int64" },
      ],
      (ops, { table, ids }) => ops.op("Gather", [table, ids]),
      { opset },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
    expect(result.analytic.table.slice(0, 2)).toEqual([0, 0]);
  });

  test("Gather with negative indices", async () => {
    const result = await gradCheck(
      [
        { name: "table", dims: [4, 2] },
        { name: "ids", dims: [4], values: [-1, 0, -4, 3], dtype: "int64" },
      ],
      (ops, { table, ids }) => ops.op("Gather", [table, ids]),
      { opset },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Gather a scalar index along axis 1", async () => {
    const result = await gradCheck(
      [
        { name: "hidden", dims: [2, 4, 3] },
        { name: "position", dims: [], values: [0], dtype: "int64" },
      ],
      (ops, { hidden, position }) => ops.op("Gather", [hidden, position], [attr.int("axis", 1)]),
      { opset },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Gather 2-D indices along axis -1", async () => {
    const result = await gradCheck(
      [
        { name: "data", dims: [2, 3, 4] },
        { name: "ids", dims: [2, 2], values: [3, -1, 0, 3], dtype: "int64" },
      ],
      (ops, { data, ids }) => ops.op("Gather", [data, ids], [attr.int("axis", -1)]),
      { opset },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Gather along axis 1 with a symbolic data dim", async () => {
    const result = await gradCheck(
      [
        { name: "data", dims: [2, 4, 3] },
        { name: "ids", dims: [3], values: [1, 3, 1], dtype: "int64" },
      ],
      (ops, { data, ids }) => {
        data.type = { kind: "tensor", elemType: ops.dtype, shape: ["batch", "sequence", 3] };
        const gathered = ops.op("Gather", [data, ids], [attr.int("axis", 1)]);
        return ops.op("Reshape", [gathered, ops.ints([2, 3, 3])]);
      },
      { opset },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("GatherElements along the last axis with repeats and negatives", async () => {
    const result = await gradCheck(
      [
        { name: "logits", dims: [3, 4] },
        { name: "targets", dims: [3, 2], values: [1, 1, 0, -1, 3, 2], dtype: "int64" },
      ],
      (ops, { logits, targets }) => ops.op("GatherElements", [logits, targets], [attr.int("axis", 1)]),
      { opset },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("GatherElements with indices smaller than data", async () => {
    const result = await gradCheck(
      [
        { name: "data", dims: [3, 4, 2] },
        { name: "ids", dims: [2, 3, 1], values: [0, 1, 2, 2, 0, 1], dtype: "int64" },
      ],
      (ops, { data, ids }) => ops.op("GatherElements", [data, ids], [attr.int("axis", 0)]),
      { opset },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
