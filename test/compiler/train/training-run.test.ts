import * as path from "node:path";
import { adamw, defineSpec, lora, select } from "../../../compiler/dsl";
import { compileForTest } from "../../helpers/artifacts";
import { PATTERN_IDS, causalLmBatch } from "../../helpers/batches";
import { removeTempDirs } from "../../helpers/temp";
import { trainLosses } from "../../helpers/training";

afterAll(removeTempDirs);

const LLAMA = path.resolve(__dirname, "../../../fixtures/llama-tiny.onnx");
const STEPS = 100;

async function train(): Promise<number[]> {
  const spec = defineSpec({
    // The fixture's random head gives logits too small to fit anything, so the head is adapted too.
    methods: [lora({ targets: select.allLinear().or(select.role("head")), rank: 4, alpha: 8, dropout: 0.1 })],
    train: { optimizer: adamw({ lr: 1e-2 }), clipGradNorm: 1 },
    seed: 7,
  });
  const artifacts = compileForTest(LLAMA, spec);
  const losses = await trainLosses(artifacts, causalLmBatch(PATTERN_IDS), STEPS, 1e-2);
  await (await artifacts.session("train")).release();
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
