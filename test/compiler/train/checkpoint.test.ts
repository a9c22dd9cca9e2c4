import * as path from "node:path";
import { defineSpec, lora, select } from "../../../compiler/dsl";
import { loadModel } from "../../../compiler/ir/io";
import { compileForTest } from "../../helpers/artifacts";
import { PADDED_IDS, PADDED_MASK, causalLmBatch } from "../../helpers/batches";
import { changedParams } from "../../helpers/gradients";
import { removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
function spec(checkpointActivations: boolean): ReturnType<typeof defineSpec> {
  return defineSpec({
    methods: [lora({ targets: select.allLinear(), rank: 2, dropout: 0.2 })],
    train: { checkpointActivations },
    seed: 3,
  });
}

describe("activation checkpointing", () => {
  test.each(["llama-tiny.onnx", "gpt2-tiny-op17.onnx", "gpt2-tiny-op14.onnx"])("%s gives the same gradients", async (fixture) => {
    const plain = compileForTest(path.join(FIXTURES, fixture), spec(false));
    const checkpointed = compileForTest(path.join(FIXTURES, fixture), spec(true));
    const batch = causalLmBatch(PADDED_IDS, PADDED_MASK);
    // Non-zero B so that every gradient is non-zero.
    const params = changedParams(plain.params, Object.keys(plain.params), (name, values) => (name.endsWith("lora_B") ? Float32Array.from(values, (_, i) => Math.sin(i + name.length) * 0.1) : undefined));
    const expected = await (await plain.session("grad")).run({ ...batch, ...params });
    const actual = await (await checkpointed.session("grad")).run({ ...batch, ...params });
    let worst = 0;
    for (const name of Object.keys(expected)) {
      const a = expected[name].data as Float32Array;
      const b = actual[name].data as Float32Array;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    // Dropout masks are seeded alike in both graphs, and the recomputed forward runs the same kernels on the same values.
    expect(worst).toBeLessThan(1e-6);

    const graph = loadModel(path.join(checkpointed.dir, "grad.onnx")).graph;
    expect(graph.nodes.filter((node) => node.name.endsWith("/recompute")).length).toBeGreaterThan(10);
  });

  test("backward reads no forward intermediates of a layer", () => {
    const checkpointed = compileForTest(path.join(FIXTURES, "llama-tiny.onnx"), spec(true));
    const graph = loadModel(path.join(checkpointed.dir, "grad.onnx")).graph;
    // Softmax outputs inside the layers are the largest activations; with checkpointing only the recomputed copies feed the backward pass.
    const forwardSoftmax = graph.nodes.filter((node) => node.opType === "Softmax" && !node.name.endsWith("/recompute") && !node.name.startsWith("/loss"));
    expect(forwardSoftmax.length).toBe(2);
    for (const node of forwardSoftmax) {
      const readers = node.outputs[0].uses.map((use) => use.node.name);
      expect(readers.every((name) => !name.startsWith("/grad"))).toBe(true);
    }
  });
});
