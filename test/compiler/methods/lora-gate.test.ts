import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import { compileArtifacts } from "../../../compiler/emit/compile";
import { writePeftAdapter } from "../../../compiler/emit/peft-adapter";
import { compileForTest, int64Matrix } from "../../helpers/artifacts";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const BATCH = { input_ids: int64Matrix([[3, 14, 15, 92, 65, 35]]), attention_mask: int64Matrix([[1, 1, 1, 1, 1, 1]]) };

function filled(shape: readonly number[], scale: number): ort.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return new ort.Tensor("float32", Float32Array.from({ length: size }, (_, i) => Math.sin(i + 1) * scale), [...shape]);
}

describe("gated LoRA (UniPELT)", () => {
  test.each(["gpt2-tiny-op17.onnx", "llama-tiny.onnx"])("%s: a closed-form gate of 0.5 halves the update", async (fixture) => {
    const targets = select.role("attn.q", "attn.v");
    const gated = compileForTest(path.join(FIXTURES, fixture), defineSpec({ methods: [lora({ targets, rank: 2, gate: true })] }));
    const plain = compileForTest(path.join(FIXTURES, fixture), defineSpec({ methods: [lora({ targets, rank: 2 })] }));
    const gates = gated.manifest.parameters.filter((parameter) => parameter.method === "gate");
    expect(gates.map((parameter) => parameter.name)).toEqual(gated.manifest.lora.flatMap((record) => (record.gate ? [record.gate, record.gate.replace(/\.weight$/, ".bias")] : [])).filter((name, i, all) => all.indexOf(name) === i));
    expect(gates.length).toBeGreaterThan(0);

    // Zero gate weights and bias give sigmoid(0) = 0.5 for every token.
    const feeds: Record<string, ort.Tensor> = { ...gated.params };
    const halved: Record<string, ort.Tensor> = { ...plain.params };
    for (const parameter of plain.manifest.parameters) {
      if (!parameter.name.endsWith("lora_B")) continue;
      feeds[parameter.name] = filled(parameter.shape, 0.2);
      halved[parameter.name] = filled(parameter.shape, 0.1);
    }
    const gatedLogits = (await (await gated.session("eval")).run({ ...BATCH, ...feeds, labels: BATCH.input_ids })).logits.data as Float32Array;
    const plainLogits = (await (await plain.session("eval")).run({ ...BATCH, ...halved, labels: BATCH.input_ids })).logits.data as Float32Array;
    const difference = Math.max(...gatedLogits.map((value, i) => Math.abs(value - plainLogits[i])));
    expect(difference).toBeLessThan(1e-5);

    // An open gate (large bias) lets the whole update through, so the logits move.
    for (const gate of gates.filter((parameter) => parameter.name.endsWith(".bias"))) feeds[gate.name] = new ort.Tensor("float32", Float32Array.of(30), [1]);
    const opened = (await (await gated.session("eval")).run({ ...BATCH, ...feeds, labels: BATCH.input_ids })).logits.data as Float32Array;
    expect(Math.max(...opened.map((value, i) => Math.abs(value - plainLogits[i])))).toBeGreaterThan(1e-4);
  });

  test("mergeAdapters rejects a gated update", () => {
    const spec = defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank: 2, gate: true })], inference: { mergeAdapters: true } });
    expect(() => compileArtifacts({ modelFile: path.join(FIXTURES, "llama-tiny.onnx"), outDir: path.join(makeTempDir(), "out"), spec })).toThrow(expect.objectContaining({ option: ["inference", "mergeAdapters"], message: expect.stringMatching(/mergeAdapters" cannot fold the LoRA of layers\.0\.attn\.q: a learned gate/) }));
  });

  test("a PEFT adapter file rejects a gated update", () => {
    const artifacts = compileForTest(path.join(FIXTURES, "llama-tiny.onnx"), defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank: 2, gate: true })] }));
    const tensors = new Map(Object.entries(artifacts.params).map(([name, tensor]) => [name, tensor.data as Float32Array]));
    expect(() => writePeftAdapter(path.join(makeTempDir(), "adapter"), { lora: artifacts.manifest.lora, tensors } as never)).toThrow(/learned LoRA gate \(UniPELT\)/);
  });
});
