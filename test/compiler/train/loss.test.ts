import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { causalLM, maskedLM, regression, sequenceClassification } from "../../../compiler/dsl";
import type { Loss } from "../../../compiler/dsl/training";
import { saveModel } from "../../../compiler/ir/io";
import { Model } from "../../../compiler/ir/model";
import { tensorType } from "../../../compiler/ir/types";
import { DataType } from "../../../compiler/onnx/dtype";
import { addLoss } from "../../../compiler/train/loss";
import { openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

/** Runs a loss on fed logits and labels, returning the loss and its gradient with respect to the logits. */
async function runLoss(loss: Loss, logitDims: number[], logits: number[], labels: ort.Tensor): Promise<{ loss: number; grad: Float32Array }> {
  const model = new Model({ irVersion: 9, opsetImports: new Map([["", 17]]), graphName: "loss" });
  const input = model.graph.addInput("logits", tensorType(DataType.FLOAT, logitDims));
  const nodes = addLoss(model.graph, 17, input, loss, true);
  model.graph.addOutput(nodes.loss);
  model.graph.addOutput(nodes.logitsGrad!);
  const file = path.join(makeTempDir(), "loss.onnx");
  saveModel(model, file);
  const session = await openSession(file);
  const outputs = await session.run({ logits: new ort.Tensor("float32", Float32Array.from(logits), logitDims), labels });
  await session.release();
  return { loss: outputs[nodes.loss.name].data[0] as number, grad: outputs[nodes.logitsGrad!.name].data as Float32Array };
}

/** Cross-entropy of one row in float64. */
function rowLoss(row: number[], label: number): number {
  const max = Math.max(...row);
  return Math.log(row.reduce((sum, value) => sum + Math.exp(value - max), 0)) + max - row[label];
}

const LOGITS = Array.from({ length: 2 * 3 * 4 }, (_, i) => Math.sin(i * 1.7) * 2);
const row = (b: number, t: number): number[] => LOGITS.slice((b * 3 + t) * 4, (b * 3 + t + 1) * 4);

describe("losses", () => {
  test("causal LM shifts labels and ignores -100", async () => {
    const labels = [
      [1, 2, 3],
      [0, 1, -100],
    ];
    const result = await runLoss(causalLM(), [2, 3, 4], LOGITS, new ort.Tensor("int64", BigInt64Array.from(labels.flat().map(BigInt)), [2, 3]));
    // Counted: (b0, t0 → 2), (b0, t1 → 3), (b1, t0 → 1).
    const expected = (rowLoss(row(0, 0), 2) + rowLoss(row(0, 1), 3) + rowLoss(row(1, 0), 1)) / 3;
    expect(result.loss).toBeCloseTo(expected, 5);
    // The last position and ignored labels get no gradient.
    expect([...result.grad.slice(8, 12)].every((value) => value === 0)).toBe(true);
    expect([...result.grad.slice(16, 24)].every((value) => value === 0)).toBe(true);
    // Each counted row's gradient sums to zero (softmax minus one-hot).
    expect(Math.abs([...result.grad.slice(0, 4)].reduce((a, b) => a + b, 0))).toBeLessThan(1e-6);
  });

  test("all labels ignored gives zero loss and gradient", async () => {
    const labels = new ort.Tensor("int64", BigInt64Array.from(Array(6).fill(-100n)), [2, 3]);
    const result = await runLoss(causalLM(), [2, 3, 4], LOGITS, labels);
    expect(result.loss).toBe(0);
    expect([...result.grad].every((value) => value === 0)).toBe(true);
  });

  test("masked LM compares each position with its label", async () => {
    const labels = [
      [-100, 2, -100],
      [3, -100, -100],
    ];
    const result = await runLoss(maskedLM(), [2, 3, 4], LOGITS, new ort.Tensor("int64", BigInt64Array.from(labels.flat().map(BigInt)), [2, 3]));
    expect(result.loss).toBeCloseTo((rowLoss(row(0, 1), 2) + rowLoss(row(1, 0), 3)) / 2, 5);
  });

  test("sequence classification", async () => {
    const logits = [0.5, -1, 2, 0.1, 0.3, -0.2];
    const result = await runLoss(sequenceClassification({ classes: 3 }), [2, 3], logits, new ort.Tensor("int64", BigInt64Array.of(2n, 0n), [2]));
    expect(result.loss).toBeCloseTo((rowLoss(logits.slice(0, 3), 2) + rowLoss(logits.slice(3), 0)) / 2, 5);
  });

  test("regression uses the mean squared error", async () => {
    const result = await runLoss(regression({ targets: 2 }), [2, 2], [1, 2, 3, 4], new ort.Tensor("float32", Float32Array.of(0, 2, 1, 5), [2, 2]));
    expect(result.loss).toBeCloseTo((1 + 0 + 4 + 1) / 4, 6);
    expect([...result.grad]).toEqual([0.5, 0, 1, -0.5]);
  });

  test("gradient equals central differences", async () => {
    const labels = new ort.Tensor("int64", BigInt64Array.of(1n, 2n, 3n, 0n, 1n, 2n), [2, 3]);
    const base = await runLoss(causalLM(), [2, 3, 4], LOGITS, labels);
    const epsilon = 1e-2;
    for (const index of [0, 5, 14]) {
      const plus = [...LOGITS];
      const minus = [...LOGITS];
      plus[index] += epsilon;
      minus[index] -= epsilon;
      const slope = ((await runLoss(causalLM(), [2, 3, 4], plus, labels)).loss - (await runLoss(causalLM(), [2, 3, 4], minus, labels)).loss) / (2 * epsilon);
      // float32 losses near 1 with a step of 1e-2: rounding and truncation stay below 1e-4.
      expect(Math.abs(base.grad[index] - slope)).toBeLessThan(1e-4);
    }
  });

  test("wrong logits rank is a clear error", () => {
    const model = new Model({ irVersion: 9, opsetImports: new Map([["", 17]]), graphName: "loss" });
    const input = model.graph.addInput("logits", tensorType(DataType.FLOAT, ["batch", 2]));
    expect(() => addLoss(model.graph, 17, input, causalLM(), true)).toThrow(/\[batch, sequence, vocab\].*sequenceClassification/);
  });
});
