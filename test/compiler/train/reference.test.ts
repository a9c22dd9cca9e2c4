import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { adamw, defineSpec, lora, select } from "../../../compiler/dsl";
import { compileForTest, floatScalar, int64Matrix, int64Scalar, readJson } from "../../helpers/artifacts";
import { CORPUS_DIR, describeCorpus, peftcLoraName as parameterName } from "../../helpers/corpus";
import { removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

interface LoraGradReference {
  input_ids: number[][];
  attention_mask: number[][];
  labels: number[][];
  loss: number;
  values: Record<string, number[][]>;
  grads: Record<string, number[][]>;
}

interface AdamWReference {
  updated: Record<string, number[][]>;
  exp_avg: Record<string, number[][]>;
  exp_avg_sq: Record<string, number[][]>;
  loss_after: number;
}

function tensor(rows: number[][]): ort.Tensor {
  return new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, rows[0].length]);
}

/** Relative error of a tensor by its norm, the measure the reference's tolerances use. */
function relativeNormError(actual: ArrayLike<number>, expected: readonly number[]): number {
  let difference = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    difference += (actual[i] - expected[i]) ** 2;
    norm += expected[i] ** 2;
  }
  return Math.sqrt(difference / norm);
}

describeCorpus("training graphs on aidreams260K", () => {
  const dir = path.join(CORPUS_DIR, "aidreams260K");
  const grad = readJson<LoraGradReference>(path.join(dir, "reference", "lora_grad.json"));
  const adam = readJson<AdamWReference>(path.join(dir, "reference", "lora_adamw.json"));
  const spec = defineSpec({
    methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8 })],
    train: { optimizer: adamw({ lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }) },
  });
  const batch = { input_ids: int64Matrix(grad.input_ids), attention_mask: int64Matrix(grad.attention_mask), labels: int64Matrix(grad.labels) };
  const params = Object.fromEntries(Object.entries(grad.values).map(([name, rows]) => [parameterName(name), tensor(rows)]));

  describe.each(["model.onnx", "model_nofold.onnx"])("%s", (file) => {
    const artifacts = compileForTest(path.join(dir, file), spec);

    test("loss and LoRA gradients equal PyTorch's", async () => {
      const outputs = await (await artifacts.session("grad")).run({ ...batch, ...params });
      const loss = outputs.loss.data[0] as number;
      // The reference suggests 1e-5 relative for losses and 1e-3 relative per tensor norm for gradients.
      expect(Math.abs(loss - grad.loss) / grad.loss).toBeLessThan(1e-5);
      for (const [name, rows] of Object.entries(grad.grads)) {
        const actual = outputs[`${parameterName(name)}.grad`].data as Float32Array;
        const expected = rows.flat();
        expect(relativeNormError(actual, expected)).toBeLessThan(1e-3);
        const worst = Math.max(...expected.map((value, i) => Math.abs(actual[i] - value)));
        expect(worst).toBeLessThan(1e-6);
      }
    });

    test("one AdamW step equals PyTorch's", async () => {
      const train = await artifacts.session("train");
      const outputs = await train.run({ ...batch, ...params, ...artifacts.zeroState(), lr: floatScalar(1e-2), step: int64Scalar(1) });
      for (const [name, rows] of Object.entries(adam.updated)) {
        const actual = outputs[`${parameterName(name)}.new`].data as Float32Array;
        // 1e-6 absolute is the reference's suggested tolerance for AdamW-updated values.
        expect(Math.max(...rows.flat().map((value, i) => Math.abs(actual[i] - value)))).toBeLessThan(1e-6);
      }
      for (const [name, rows] of Object.entries(adam.exp_avg)) {
        const actual = outputs[`${parameterName(name)}.m.new`].data as Float32Array;
        expect(relativeNormError(actual, rows.flat())).toBeLessThan(1e-3);
      }
      for (const [name, rows] of Object.entries(adam.exp_avg_sq)) {
        const actual = outputs[`${parameterName(name)}.v.new`].data as Float32Array;
        expect(relativeNormError(actual, rows.flat())).toBeLessThan(1e-3);
      }

      const updated = Object.fromEntries(Object.keys(params).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
      const after = await (await artifacts.session("eval")).run({ ...batch, ...updated });
      expect(Math.abs((after.loss.data[0] as number) - adam.loss_after) / adam.loss_after).toBeLessThan(1e-5);
    });
  });
});
