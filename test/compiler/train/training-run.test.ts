import * as path from "node:path";
import type * as ort from "onnxruntime-node";
import { adamw, defineSpec, lora, select } from "../../../compiler/dsl";
import { compileForTest, floatScalar, int64Matrix, int64Scalar } from "../../helpers/artifacts";
import { removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const LLAMA = path.resolve(__dirname, "../../../fixtures/llama-tiny.onnx");
const STEPS = 100;

/** A batch of two token patterns the base model has never seen, so the loss has far to fall. */
const IDS = [
  [5, 17, 29, 41, 53, 65, 77, 89, 101, 113, 125, 137],
  [200, 190, 180, 170, 160, 150, 140, 130, 120, 110, 100, 90],
];

async function train(): Promise<number[]> {
  const spec = defineSpec({
    // The fixture's random head gives logits too small to fit anything, so the head is adapted too.
    methods: [lora({ targets: select.allLinear().or(select.role("head")), rank: 4, alpha: 8, dropout: 0.1 })],
    train: { optimizer: adamw({ lr: 1e-2 }), clipGradNorm: 1 },
    seed: 7,
  });
  const artifacts = compileForTest(LLAMA, spec);
  const session = await artifacts.session("train");
  let params: Record<string, ort.Tensor> = { ...artifacts.params };
  let state = artifacts.zeroState();
  const batch = { input_ids: int64Matrix(IDS), attention_mask: int64Matrix(IDS.map((row) => row.map(() => 1))), labels: int64Matrix(IDS) };
  const losses: number[] = [];
  for (let step = 1; step <= STEPS; step++) {
    const outputs = await session.run({ ...batch, ...params, ...state, lr: floatScalar(1e-2), step: int64Scalar(step) });
    losses.push(outputs.loss.data[0] as number);
    params = Object.fromEntries(Object.keys(params).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
    state = Object.fromEntries(Object.keys(state).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
  }
  await session.release();
  return losses;
}

describe("LoRA training with train.onnx", () => {
  test("100 steps lower the loss, deterministically", async () => {
    const first = await train();
    expect(first).toHaveLength(STEPS);
    expect(first.every(Number.isFinite)).toBe(true);
    // The base model's loss is near ln(512) = 6.2. LoRA memorizes the two rows: measured 0.06 after
    // 100 steps (Node 20, onnxruntime-node 1.31 CPU). The test asks for a fall to a tenth.
    expect(first[0]).toBeGreaterThan(5);
    expect(first[STEPS - 1]).toBeLessThan(first[0] / 10);
    const second = await train();
    expect(second).toEqual(first);
  });
});
