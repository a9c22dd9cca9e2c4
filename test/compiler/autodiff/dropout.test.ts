import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { buildBackward } from "../../../compiler/autodiff/backward";
import { PeftcError } from "../../../compiler/errors";
import { attr } from "../../../compiler/ir/attribute";
import { inferShapes } from "../../../compiler/ir/infer";
import { saveModel } from "../../../compiler/ir/io";
import { Model } from "../../../compiler/ir/model";
import { tensorType } from "../../../compiler/ir/types";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { openSession } from "../../helpers/ort";
import { makeTempDir } from "../../helpers/temp";
import { gradCheck } from "./gradcheck";

// Central differences in float64 with a step of 1e-6 are accurate to about 1e-9 for the identity.
const FLOAT64_TOLERANCE = 1e-7;

const DIMS = [4, 8];
const SIZE = 32;
const RATIO = 0.25;

afterAll(async () => (await import("../../helpers/temp")).removeTempDirs());

/**
 * Builds loss = Σ Dropout(x) · cotangent in training mode with the backward
 * pass appended. Finite differences cannot check a random op, so the test
 * compares the gradient with the mask the same run drew.
 */
function trainingModel(outputs: number, modeAtRunTime = false): { model: Model; gradName: string } {
  const model = new Model({ irVersion: 9, opsetImports: new Map([["", 17]]), graphName: "dropout" });
  const graph = model.graph;
  const x = graph.addInput("x", tensorType(DataType.DOUBLE, DIMS));
  const cotangent = graph.addInput("cotangent", tensorType(DataType.DOUBLE, DIMS));
  const ratio = graph.addInitializer(Tensor.fromArray("ratio", DataType.FLOAT, [], Float32Array.of(RATIO)));
  const training = modeAtRunTime
    ? graph.addInput("training_mode", tensorType(DataType.BOOL, []))
    : graph.addInitializer(Tensor.fromArray("training_mode", DataType.BOOL, [], Uint8Array.of(1)));
  const dropout = graph.addNode({ opType: "Dropout", inputs: [x, ratio, training], outputs: outputs === 2 ? ["y", "mask"] : ["y"] });
  const product = graph.addNode({ opType: "Mul", inputs: [dropout.outputs[0], cotangent], outputs: 1 }).outputs[0];
  const loss = graph.addNode({ opType: "ReduceSum", inputs: [product], attributes: [attr.int("keepdims", 0)], outputs: ["loss"] }).outputs[0];
  graph.addOutput(dropout.outputs[0]);
  if (outputs === 2) graph.addOutput(dropout.outputs[1]);
  graph.addOutput(loss);
  inferShapes(model);
  const one = graph.addInitializer(Tensor.fromArray("one", DataType.DOUBLE, [], Float64Array.of(1)));
  const grad = buildBackward(model, new Map([[loss, one]]), [x]).get(x)!;
  const named = graph.addNode({ opType: "Identity", inputs: [grad], outputs: ["grad_x"] }).outputs[0];
  graph.addOutput(named);
  return { model, gradName: "grad_x" };
}

describe("Dropout gradient", () => {
  test.each([
    ["a constant", false],
    ["a run-time input", true],
  ])("training mode from %s scales dy by the mask", async (_source, modeAtRunTime) => {
    const { model, gradName } = trainingModel(2, modeAtRunTime as boolean);
    const file = path.join(makeTempDir("peftc-dropout-"), "dropout.onnx");
    saveModel(model, file);
    const session = await openSession(file);
    const x = Float64Array.from({ length: SIZE }, (_, i) => 0.1 + i / SIZE);
    const cotangent = Float64Array.from({ length: SIZE }, (_, i) => (i % 5) - 2.5);
    const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor("float64", x, DIMS), cotangent: new ort.Tensor("float64", cotangent, DIMS) };
    if (modeAtRunTime) feeds.training_mode = new ort.Tensor("bool", Uint8Array.of(1), []);
    const results = await session.run(feeds);
    await session.release();

    const mask = results.mask.data as Uint8Array;
    const grad = results[gradName].data as Float64Array;
    // A mask of all true or all false would not tell a masked gradient from an unmasked or zero one.
    expect(mask.some((kept) => kept)).toBe(true);
    expect(mask.some((kept) => !kept)).toBe(true);
    for (let i = 0; i < SIZE; i++) {
      const expected = mask[i] ? cotangent[i] / (1 - RATIO) : 0;
      expect(grad[i]).toBeCloseTo(expected, 6);
    }
  });

  test("training mode without a mask output is rejected", () => {
    expect(() => trainingModel(1)).toThrow(PeftcError);
    expect(() => trainingModel(1)).toThrow(/does not output its mask/);
  });

  test("without training_mode is the identity", async () => {
    const result = await gradCheck([{ name: "x", dims: [2, 3] }], (ops, { x }) => ops.op("Dropout", [x, ops.scalar(0.5)]));
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });

  test("training_mode false at run time is the identity", async () => {
    const result = await gradCheck(
      [
        { name: "x", dims: [2, 3] },
        { name: "training_mode", dims: [], values: [0], dtype: "bool" },
      ],
      (ops, { x, training_mode }) => ops.node("Dropout", [x, ops.scalar(0.5), training_mode], [], 2)[0],
    );
    expect(result.maxError).toBeLessThan(FLOAT64_TOLERANCE);
  });
});
