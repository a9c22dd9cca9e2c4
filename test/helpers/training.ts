import * as fs from "node:fs";
import * as path from "node:path";
import type * as ort from "onnxruntime-node";
import { adamw, defineSpec, lora, select } from "../../compiler/dsl";
import { compileArtifacts } from "../../compiler/emit/compile";
import { seededRandom } from "../../runtime/sampling";
import { type CompiledArtifacts, floatScalar, int64Scalar } from "./artifacts";
import { makeTempDir } from "./temp";

export const LLAMA = path.resolve(__dirname, "../../fixtures/llama-tiny.onnx");

/** Compiles llama-tiny with LoRA on every linear layer and the head (the fixture's random head alone fits nothing) and returns the artifact folder. */
export function compileTinyLlama(dropout = 0): string {
  const dir = path.join(makeTempDir("peftc-train-"), "artifacts");
  const spec = defineSpec({
    methods: [lora({ targets: select.allLinear().or(select.role("head")), rank: 4, alpha: 8, dropout })],
    train: { optimizer: adamw({ lr: 1e-2 }), clipGradNorm: 1 },
    seed: 7,
  });
  compileArtifacts({ modelFile: LLAMA, outDir: dir, spec });
  return dir;
}

/** Writes `rows` as a JSONL file in a fresh temp folder. */
export function writeJsonl(rows: readonly unknown[], name = "data.jsonl"): string {
  const file = path.join(makeTempDir("peftc-data-"), name);
  fs.writeFileSync(file, rows.map((row) => JSON.stringify(row)).join("\n") + "\n");
  return file;
}

/** `count` rows of `length` token ids below 512 (the fixture's vocabulary), each a repeating pattern the model can learn. */
export function patternRows(count: number, length: number, seed = 1): { input_ids: number[] }[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const start = Math.floor(random() * 400);
    const stride = 1 + Math.floor(random() * 3);
    return { input_ids: Array.from({ length }, (_, t) => start + ((t * stride) % 24)) };
  });
}

/**
 * Runs `steps` train.onnx steps on one batch, from the initial parameters
 * and zero optimizer state, feeding each step's `<name>.new` outputs to the
 * next, and returns each step's loss.
 */
export async function trainLosses(artifacts: CompiledArtifacts, batch: Record<string, ort.Tensor>, steps: number, lr: number): Promise<number[]> {
  const session = await artifacts.session("train");
  let params: Record<string, ort.Tensor> = { ...artifacts.params };
  let state = artifacts.zeroState();
  const losses: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const outputs = await session.run({ ...batch, ...params, ...state, lr: floatScalar(lr), step: int64Scalar(step) });
    losses.push(outputs.loss.data[0] as number);
    params = Object.fromEntries(Object.keys(params).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
    state = Object.fromEntries(Object.keys(state).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
  }
  return losses;
}
