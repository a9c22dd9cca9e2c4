import { attr } from "../../../compiler/ir/attribute";
import { DataType } from "../../../compiler/onnx/dtype";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6 are accurate to about 1e-9 for these smooth ops.
const FLOAT64_TOLERANCE = 1e-7;

// Inputs in [0.3, 2] keep Sqrt, Log and Reciprocal away from their pole at 0.
const POSITIVE = [0.3, 0.55, 0.8, 1.1, 1.45, 2.0];

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

describe("unary gradients", () => {
  test.each(["Sqrt", "Log", "Reciprocal"])("%s on positive inputs", async (op) => {
    const result = await gradCheck([{ name: "x", dims: [2, 3], values: POSITIVE }], (ops, { x }) => ops.op(op, [x]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test.each(["Exp", "Abs", "Identity"])("%s", async (op) => {
    const result = await gradCheck([{ name: "x", dims: [2, 3, 2] }], (ops, { x }) => ops.op(op, [x]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  // onnxruntime 1.31 has no float64 Erf kernel on the CPU, so this runs in float32 with a step of 1e-3:
  // the loss's float32 rounding (about 1e-7 relative) over the step gives errors measured at 3e-5.
  test("Erf in float32", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3, 2] }], (ops, { x }) => ops.op("Erf", [x]), { dtype: "float32", epsilon: 1e-3 });
    expect(result.maxError).toBeLessThan(2e-3);
  });

  test("Abs at zero gives zero", async () => {
    const result = await gradCheck([{ name: "x", dims: [3], values: [-0.5, 0, 0.5] }], (ops, { x }) => ops.op("Abs", [x]));
    // dy · 0 is -0 where the cotangent is negative, which is still zero.
    expect(Math.abs(result.analytic.x[1])).toBe(0);
  });

  // The round trip through float32 rounds x by up to 6e-8, which a step of 1e-6 would turn into
  // errors near 0.1. Over a step of 1e-2 the rounding costs at most about 1e-5.
  test("Cast to float32 and back", async () => {
    const result = await gradCheck(
      [{ name: "x", dims: [2, 3] }],
      (ops, { x }) => ops.op("Cast", [ops.op("Cast", [x], [attr.int("to", DataType.FLOAT)])], [attr.int("to", DataType.DOUBLE)]),
      { epsilon: 1e-2 },
    );
    expect(result.maxError).toBeLessThan(1e-5);
  });

  test("Cast from int64 stops the gradient", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [3] },
        { name: "n", dims: [3], values: [1, 2, 3], dtype: "int64" },
      ],
      (ops, { x, n }) => ops.op("Mul", [x, ops.op("Cast", [n], [attr.int("to", DataType.DOUBLE)])]),
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
