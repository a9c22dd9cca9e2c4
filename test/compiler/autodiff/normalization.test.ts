import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6 are accurate to about 1e-9 for these smooth ops.
const FLOAT64_TOLERANCE = 1e-7;

// onnxruntime 1.31 has float32 but no float64 CPU kernels for com.microsoft::SkipLayerNormalization and
// SkipSimplifiedLayerNormalization. In float32 with a step of 1e-3, the loss's rounding (about 1e-7
// relative) over the step dominates: these tests measured errors up to 2e-4.
const FLOAT32_OPTIONS = { dtype: "float32" as const, epsilon: 1e-3, domains: { "com.microsoft": 1 } };
const FLOAT32_TOLERANCE = 2e-3;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("LayerNormalization gradient", () => {
  test.each([
    [-1, [4], true],
    [-1, [4], false],
    [1, [3, 4], true],
    [1, [3, 4], false],
    [-2, [3, 4], true],
  ])("axis=%i scale %j bias=%s", async (axis, scaleDims, withBias) => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "scale", dims: scaleDims as number[] },
        ...(withBias ? [{ name: "bias", dims: scaleDims as number[] }] : []),
      ],
      (ops, { x, scale, bias }) => ops.op("LayerNormalization", [x, scale, bias], [attr.int("axis", axis as number), attr.float("epsilon", 1e-3)]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  // From opset 18 ReduceMean takes its axes as an input, which the recomputed statistics must follow.
  test("axis=1 at opset 18", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "scale", dims: [3, 4] },
      ],
      (ops, { x, scale }) => ops.op("LayerNormalization", [x, scale], [attr.int("axis", 1)]),
      { opset: 18 },
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("loss reading InvStdDev is rejected", async () => {
    await expect(
      gradCheck(
        [
          { name: "x", dims: [2, 4] },
          { name: "scale", dims: [4] },
        ],
        (ops, { x, scale }) => {
          const [y, , invStdDev] = ops.node("LayerNormalization", [x, scale], [], 3);
          return ops.op("Mul", [y, invStdDev]);
        },
        FLOAT32_OPTIONS,
      ),
    ).rejects.toThrow(/normalization statistic/);
  });

  test("scale and bias broadcast over the first normalized axis", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "scale", dims: [1, 4] },
        { name: "bias", dims: [4] },
      ],
      (ops, { x, scale, bias }) => ops.op("LayerNormalization", [x, scale, bias], [attr.int("axis", 1)]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  // The default stash_type keeps Mean and InvStdDev in float, and the rule reads them only for an
  // input no wider than that, so this test runs in float32 (tolerance explained below).
  test("reads the Mean and InvStdDev outputs", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "scale", dims: [4] },
        { name: "bias", dims: [4] },
      ],
      (ops, { x, scale, bias }) => ops.op("LayerNormalization", [x, scale, bias], [], 3),
      FLOAT32_OPTIONS,
    );
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });

  test("recomputes float statistics of a float64 input", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "scale", dims: [4] },
      ],
      (ops, { x, scale }) => ops.op("LayerNormalization", [x, scale], [], 3),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});

describe("RMS normalization gradients", () => {
  test.each([-1, 1])("SimplifiedLayerNormalization axis=%i", async (axis) => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "scale", dims: axis === 1 ? [3, 4] : [4] },
      ],
      (ops, { x, scale }) => ops.op("SimplifiedLayerNormalization", [x, scale], [attr.int("axis", axis)]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  // inv_std_var is float, so the rule reads it only for a float32 input.
  test("SimplifiedLayerNormalization reading inv_std_var", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "scale", dims: [4] },
      ],
      (ops, { x, scale }) => ops.op("SimplifiedLayerNormalization", [x, scale], [], 2),
      FLOAT32_OPTIONS,
    );
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });
});

describe("skip normalization gradients", () => {
  test.each([1, 4])("SkipLayerNormalization with %i outputs", async (outputs) => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "skip", dims: [2, 3, 4] },
        { name: "gamma", dims: [4] },
        { name: "beta", dims: [4] },
        { name: "bias", dims: [4] },
      ],
      (ops, { x, skip, gamma, beta, bias }) => {
        const results = ops.node("SkipLayerNormalization", [x, skip, gamma, beta, bias], [attr.float("epsilon", 1e-5)], outputs, "com.microsoft");
        // With all four outputs, the loss also reads input_skip_bias_sum, so its gradient joins the normalization's.
        return outputs === 4 ? ops.op("Add", [results[0], results[3]]) : results[0];
      },
      FLOAT32_OPTIONS,
    );
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });

  test("SkipLayerNormalization with a 2-D skip and the default epsilon", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "skip", dims: [3, 4] },
        { name: "gamma", dims: [4] },
      ],
      (ops, { x, skip, gamma }) => ops.op("SkipLayerNormalization", [x, skip, gamma], [], 1, "com.microsoft"),
      FLOAT32_OPTIONS,
    );
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });

  test.each([1, 4])("SkipSimplifiedLayerNormalization with %i outputs", async (outputs) => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "skip", dims: [2, 3, 4] },
        { name: "gamma", dims: [4] },
        { name: "bias", dims: [4] },
      ],
      (ops, { x, skip, gamma, bias }) => {
        const results = ops.node("SkipSimplifiedLayerNormalization", [x, skip, gamma, bias], [attr.float("epsilon", 1e-5)], outputs, "com.microsoft");
        return outputs === 4 ? ops.op("Add", [results[0], results[3]]) : results[0];
      },
      FLOAT32_OPTIONS,
    );
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });
});
