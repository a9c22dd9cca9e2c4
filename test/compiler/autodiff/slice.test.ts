import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6; these ops are linear, so the only error is rounding.
const FLOAT64_TOLERANCE = 1e-7;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("slice gradients", () => {
  // [starts, ends, axes, steps] on a [4, 6] input.
  test.each([
    ["negative start", [-3], [6], [1], [1]],
    ["out-of-range end", [1], [100], [0], [1]],
    ["out-of-range negative start", [-100], [2], [1], [1]],
    ["step 2", [1], [6], [1], [2]],
    ["step -1 over the whole axis", [-1], [-100], [1], [-1]],
    ["step -1 inside the axis", [4], [1], [1], [-1]],
    ["step -2 from an out-of-range start", [10], [-10], [1], [-2]],
    ["several axes with mixed steps", [1, -1], [3, -100], [0, -1], [1, -2]],
  ])("Slice with %s", async (_case, starts, ends, axes, steps) => {
    const result = await gradCheck([{ name: "x", dims: [4, 6] }], (ops, { x }) => ops.op("Slice", [x, ops.ints(starts), ops.ints(ends), ops.ints(axes), ops.ints(steps)]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Slice without axes and steps", async () => {
    const result = await gradCheck([{ name: "x", dims: [4, 5, 3] }], (ops, { x }) => ops.op("Slice", [x, ops.ints([1, -4]), ops.ints([3, 100])]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Slice of three axes in shuffled order", async () => {
    const result = await gradCheck([{ name: "x", dims: [4, 5, 6] }], (ops, { x }) =>
      ops.op("Slice", [x, ops.ints([1, -4, 5]), ops.ints([3, 100, 0]), ops.ints([0, -1, 1]), ops.ints([1, 2, -2])]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test.each([
    ["step 1", [-4, 0], [5, 3], [1]],
    ["step -1", [-2, 0], [1, 3], [-1]],
  ])("Slice with runtime starts and ends and %s", async (_case, starts, ends, steps) => {
    const result = await gradCheck(
      [
        { name: "x", dims: [4, 6] },
        { name: "starts", dims: [2], values: starts, dtype: "int64" },
        { name: "ends", dims: [2], values: ends, dtype: "int64" },
      ],
      (ops, { x, starts, ends }) => {
        const sliced = ops.op("Slice", [x, starts, ends, ops.ints([1, 0]), ops.ints([steps[0], 1])]);
        // Runtime bounds leave the slice's shape unknown; the Reshape gives the loss the static shape the check needs.
        return ops.op("Reshape", [sliced, ops.ints([3, 3])]);
      },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test.each([
    ["step 1", 1],
    ["step 2", 2],
  ])("Slice of a symbolic axis with %s", async (_case, step) => {
    const result = await gradCheck([{ name: "x", dims: [5, 3] }], (ops, { x }) => {
      x.type = { kind: "tensor", elemType: ops.dtype, shape: ["rows", 3] };
      const sliced = ops.op("Slice", [x, ops.ints([-4]), ops.ints([100]), ops.ints([0]), ops.ints([step])]);
      return ops.op("Reshape", [sliced, ops.ints([step === 1 ? 4 : 2, 3])]);
    });
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});

describe("pad gradients", () => {
  test("Pad with positive pads", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3] }], (ops, { x }) => ops.op("Pad", [x, ops.ints([1, 0, 2, 1])], [attr.string("mode", "constant")]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Pad with negative pads that crop", async () => {
    const result = await gradCheck([{ name: "x", dims: [3, 4] }], (ops, { x }) => ops.op("Pad", [x, ops.ints([0, -1, 1, -2])]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Pad of the constant value", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3] },
        { name: "value", dims: [] },
      ],
      (ops, { x, value }) => ops.op("Pad", [x, ops.ints([1, 1, 0, -1]), value]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Pad with axes at opset 18", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3] }], (ops, { x }) => ops.op("Pad", [x, ops.ints([2, 1]), undefined, ops.ints([-1])]), { opset: 18 });
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
