import { attr } from "../../../compiler/ir/attribute";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6 are accurate to about 1e-9 for these smooth ops.
const FLOAT64_TOLERANCE = 1e-7;

// onnxruntime 1.31 has no float64 CPU kernel for Softplus, Erf (so none for Gelu's erf form, which
// expands to Erf) or the com.microsoft GELUs, so those run in float32. With a step of 1e-3 the float32
// rounding of the loss (about 1e-7 relative) over the step dominates the error, measured at up to 6e-5
// here, and the truncation error of the central difference is below 1e-6.
const FLOAT32_OPTIONS = { dtype: "float32" as const, epsilon: 1e-3, domains: { "com.microsoft": 1 } };
const FLOAT32_TOLERANCE = 2e-3;

// Values away from 0, where Relu, LeakyRelu and Abs have a kink that a central difference would straddle.
const AWAY_FROM_ZERO = [-1.7, -0.9, -0.35, 0.2, 0.6, 1.3, -0.05, 2.1];

// Spans the tails and the curved middle of GELU.
const GELU_INPUTS = [-3, -2.1, -1.2, -0.6, -0.1, 0.15, 0.7, 1.4, 2.2, 3.5];

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("activation gradients", () => {
  test.each(["Tanh", "Sigmoid", "Relu"])("%s", async (op) => {
    const result = await gradCheck([{ name: "x", dims: [2, 4], values: AWAY_FROM_ZERO }], (ops, { x }) => ops.op(op, [x]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Softplus in float32", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 4], values: AWAY_FROM_ZERO }], (ops, { x }) => ops.op("Softplus", [x]), FLOAT32_OPTIONS);
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });

  test("Relu at zero gives zero", async () => {
    const result = await gradCheck([{ name: "x", dims: [3], values: [-0.5, 0, 0.5] }], (ops, { x }) => ops.op("Relu", [x]));
    expect(result.analytic.x[1]).toBe(0);
  });

  test.each([0.01, 0.2, -0.5])("LeakyRelu alpha=%f", async (alpha) => {
    const result = await gradCheck([{ name: "x", dims: [2, 4], values: AWAY_FROM_ZERO }], (ops, { x }) => ops.op("LeakyRelu", [x], [attr.float("alpha", alpha)]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Gelu approximate=tanh", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 5], values: GELU_INPUTS }], (ops, { x }) => ops.op("Gelu", [x], [attr.string("approximate", "tanh")]), { opset: 20 });
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("Gelu approximate=none in float32", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 5], values: GELU_INPUTS }], (ops, { x }) => ops.op("Gelu", [x]), { ...FLOAT32_OPTIONS, opset: 20 });
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });

  test("com.microsoft::Gelu", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 5] }], (ops, { x }) => ops.op("Gelu", [x], [], 1, "com.microsoft"), FLOAT32_OPTIONS);
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });

  test("com.microsoft::FastGelu with bias", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3, 4] },
        { name: "bias", dims: [4] },
      ],
      (ops, { x, bias }) => ops.op("FastGelu", [x, bias], [], 1, "com.microsoft"),
      FLOAT32_OPTIONS,
    );
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });

  test("com.microsoft::FastGelu without bias", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 4] }], (ops, { x }) => ops.op("FastGelu", [x], [], 1, "com.microsoft"), FLOAT32_OPTIONS);
    expect(result.maxError).toBeLessThan(FLOAT32_TOLERANCE);
  });
});
