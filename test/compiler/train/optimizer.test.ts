import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { adamw, sgd } from "../../../compiler/dsl";
import { defaultTrainSettings, type TrainSettings } from "../../../compiler/dsl/spec";
import type { Optimizer } from "../../../compiler/dsl/training";
import { saveModel } from "../../../compiler/ir/io";
import type { TrainableParameter } from "../../../compiler/methods/parameters";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { buildApplyGraph } from "../../../compiler/train/training-graphs";
import { floatScalar, int64Scalar } from "../../helpers/artifacts";
import { openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const P = [0.5, -0.25, 1.5, -2];
const BIAS = [0.1, -0.3];
const GRADS = [
  [[0.2, -0.1, 0.05, 0.3], [0.01, 0.02]],
  [[-0.4, 0.3, 0.0, 0.1], [0.03, -0.05]],
  [[0.1, 0.1, -0.2, 0.2], [-0.02, 0.04]],
];

function parameter(name: string, values: number[], method: TrainableParameter["method"]): TrainableParameter {
  return { name, shape: [values.length], dtype: "float32", init: "test", module: "m", method, created: method === "lora", tensor: Tensor.fromArray(name, DataType.FLOAT, [values.length], Float32Array.from(values)) };
}

/** PyTorch's AdamW and SGD on plain arrays, in float64, as the reference. */
function referenceStep(optimizer: Optimizer, p: number[], g: number[], state: number[][], step: number, lr: number, decay: boolean): number[] {
  if (optimizer.optimizer === "adamw") {
    const [m, v] = state;
    const [beta1, beta2] = optimizer.betas;
    return p.map((value, i) => {
      const decayed = decay ? value * (1 - lr * optimizer.weightDecay) : value;
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const denominator = Math.sqrt(v[i]) / Math.sqrt(1 - beta2 ** step) + optimizer.eps;
      return decayed - (lr / (1 - beta1 ** step)) * (m[i] / denominator);
    });
  }
  return p.map((value, i) => {
    let d = g[i] + (decay ? optimizer.weightDecay * value : 0);
    if (optimizer.momentum > 0) {
      state[0][i] = optimizer.momentum * state[0][i] + d;
      d = optimizer.nesterov ? d + optimizer.momentum * state[0][i] : state[0][i];
    }
    return value - lr * d;
  });
}

async function runSteps(settings: TrainSettings): Promise<{ actual: number[][]; expected: number[][] }> {
  const parameters = [parameter("w", P, "lora"), parameter("b", BIAS, "bias")];
  const decays = (each: TrainableParameter): boolean => each.method !== "bias";
  const file = path.join(makeTempDir(), "apply.onnx");
  saveModel(buildApplyGraph(parameters, settings, decays, 17), file);
  const session = await openSession(file);
  const current = [[...P], [...BIAS]];
  const reference = [[...P], [...BIAS]];
  // AdamW keeps two moments, SGD one momentum buffer when momentum is on.
  const optimizer = settings.optimizer;
  let stateCount = 2;
  if (optimizer.optimizer === "sgd") stateCount = optimizer.momentum > 0 ? 1 : 0;
  const referenceState = reference.map((values) => Array.from({ length: stateCount }, () => values.map(() => 0)));
  let feedsState: Record<string, ort.Tensor> = {};
  for (const [index, name] of ["w", "b"].entries()) {
    const suffixes = settings.optimizer.optimizer === "adamw" ? ["m", "v"] : stateCount ? ["momentum"] : [];
    for (const suffix of suffixes) feedsState[`${name}.${suffix}`] = new ort.Tensor("float32", new Float32Array(current[index].length), [current[index].length]);
  }
  const lr = 0.1;
  for (let step = 1; step <= GRADS.length; step++) {
    let grads = GRADS[step - 1];
    if (settings.clipGradNorm !== null) {
      const norm = Math.sqrt(grads.flat().reduce((sum, value) => sum + value * value, 0));
      const scale = Math.min(1, settings.clipGradNorm / (norm + 1e-6));
      grads = grads.map((values) => values.map((value) => value * scale));
    }
    const feeds: Record<string, ort.Tensor> = { ...feedsState, lr: floatScalar(lr), step: int64Scalar(step) };
    ["w", "b"].forEach((name, index) => {
      feeds[name] = new ort.Tensor("float32", Float32Array.from(current[index]), [current[index].length]);
      feeds[`${name}.grad`] = new ort.Tensor("float32", Float32Array.from(GRADS[step - 1][index]), [current[index].length]);
    });
    const outputs = await session.run(feeds);
    ["w", "b"].forEach((name, index) => {
      current[index] = Array.from(outputs[`${name}.new`].data as Float32Array);
      reference[index] = referenceStep(settings.optimizer, reference[index], grads[index], referenceState[index], step, lr, index === 0);
    });
    feedsState = Object.fromEntries(Object.keys(feedsState).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
  }
  await session.release();
  return { actual: current, expected: reference };
}

function worst(actual: number[][], expected: number[][]): number {
  return Math.max(...actual.flat().map((value, i) => Math.abs(value - expected.flat()[i])));
}

// The graph computes in float32 and the reference in float64. Parameters near 2 have a float32 spacing
// of 2.4e-7, and Adam's m / sqrt(v) amplifies rounding where a gradient is near zero, so three steps
// differ by up to about 2e-6.
const TOLERANCE = 5e-6;

describe("optimizer step", () => {
  test.each<[string, Optimizer, number | null]>([
    ["AdamW", adamw({ weightDecay: 0.1 }), null],
    ["AdamW with clipping", adamw({ betas: [0.8, 0.99], eps: 1e-6 }), 0.3],
    ["SGD", sgd({}), null],
    ["SGD with momentum and decay", sgd({ momentum: 0.9, weightDecay: 0.05 }), null],
    ["SGD with Nesterov", sgd({ momentum: 0.5, nesterov: true }), 0.2],
  ])("%s matches PyTorch over three steps", async (_name, optimizer, clipGradNorm) => {
    const { actual, expected } = await runSteps({ ...defaultTrainSettings(), optimizer, clipGradNorm });
    expect(worst(actual, expected)).toBeLessThan(TOLERANCE);
  });

  test("biases are not decayed", async () => {
    const { actual } = await runSteps({ ...defaultTrainSettings(), optimizer: sgd({ weightDecay: 1 }), clipGradNorm: null });
    // Plain SGD on the bias: b - lr · Σg, without the decay term.
    const expected = BIAS.map((value, i) => value - 0.1 * GRADS.reduce((sum, grads) => sum + grads[1][i], 0));
    expect(worst([actual[1]], [expected])).toBeLessThan(TOLERANCE);
  });
});
