import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { adamw, defineSpec, lora, prefixTuning, select } from "../../compiler/dsl";
import { readSafetensors } from "../../compiler/emit/safetensors";
import { Generator } from "../../runtime";
import { collate } from "../../runtime/data/batches";
import { makeDemoExamples } from "../../runtime/demo-tasks";
import { DeviceCopier } from "../../runtime/device-copy";
import { ArtifactFolder } from "../../runtime/trainer/artifacts";
import { releaseOutputs } from "../../runtime/trainer/placement";
import { trainStep } from "../../runtime/trainer/step";
import { type TrainOptions, train } from "../../runtime/trainer/trainer";
import { compileForTest, floatScalar, int64Matrix, int64Scalar, readJson } from "../helpers/artifacts";
import { runPeftc } from "../helpers/cli";
import { CORPUS_DIR, describeCorpus, peftcLoraName } from "../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../helpers/temp";
import { compileTinyLlama, patternRows, writeJsonl } from "../helpers/training";
import { describeWebGpu } from "../helpers/webgpu";

afterAll(removeTempDirs);

const DEMO_DIR = path.resolve(__dirname, "../../fixtures/demo");

/**
 * Largest relative L2 difference between same-named float32 tensors. Adam
 * turns rounding noise in a near-zero gradient into a full learning-rate
 * step for that element. After two steps at lr 1e-2, one element of 512 in
 * a LoRA A tensor moved 0.008 the other way, so the bound is loose.
 */
function largestDifference(a: ReadonlyMap<string, ArrayLike<number>>, b: ReadonlyMap<string, ArrayLike<number>>): number {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  let largest = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    let difference = 0;
    let norm = 0;
    for (let i = 0; i < x.length; i++) {
      difference += (x[i] - y[i]) ** 2;
      norm += x[i] ** 2;
    }
    largest = Math.max(largest, Math.sqrt(difference / (norm || 1)));
  }
  return largest;
}

function fileTensors(file: string): Map<string, ArrayLike<number>> {
  return new Map([...readSafetensors(file).tensors].map(([name, tensor]) => [name, tensor.data() as Float32Array]));
}

function ortTensors(tensors: Record<string, ort.Tensor>): Map<string, ArrayLike<number>> {
  return new Map(Object.entries(tensors).map(([name, tensor]) => [name, tensor.data as Float32Array]));
}

function expectCloseLosses(actual: readonly number[], expected: readonly number[], tolerance: number): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((loss, i) => expect(Math.abs(loss - expected[i]) / Math.abs(expected[i])).toBeLessThan(tolerance));
}

// These run wherever Dawn opens an adapter: a real GPU, or Mesa's software Vulkan driver in CI, which is slow, so the models are tiny.
describeWebGpu("the WebGPU provider", () => {
  let artifacts: string;
  let data: string;
  let evalData: string;

  beforeAll(() => {
    artifacts = compileTinyLlama(0);
    data = writeJsonl(patternRows(16, 12));
    evalData = writeJsonl(patternRows(4, 12, 2), "eval.jsonl");
  });

  test("DeviceCopier round trip", async () => {
    const copier = new DeviceCopier("webgpu");
    try {
      const host = {
        weight: new ort.Tensor("float32", Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1), [2, 3]),
        half: new ort.Tensor("float16", Uint16Array.of(0x3c00, 0xc000, 0x3800, 0), [4]),
      };
      const device = await copier.toDevice(host);
      expect(device.weight.location).toBe("gpu-buffer");
      expect(device.half.location).toBe("gpu-buffer");
      expect(device.weight.dims).toEqual([2, 3]);
      const back = await copier.toHost(device);
      expect(back.weight.location).toBe("cpu");
      expect(Array.from(back.weight.data as Float32Array)).toEqual(Array.from(host.weight.data as Float32Array));
      expect(Array.from(back.half.data as Uint16Array)).toEqual([0x3c00, 0xc000, 0x3800, 0]);
      releaseOutputs(device);
    } finally {
      await copier.release();
    }
  });

  test("train.onnx keeps state on device", async () => {
    const onDevice = new ArtifactFolder(artifacts, "webgpu");
    const onCpu = new ArtifactFolder(artifacts, "cpu");
    try {
      const rows = patternRows(4, 10, 3).map((row, i) => ({ inputIds: row.input_ids, labels: row.input_ids, source: `row ${i}` }));
      const batch = collate(rows);
      const first = await trainStep(onDevice, batch, { params: onDevice.readParams(), state: await onDevice.zeroState("train"), lr: 1e-2, step: 1 });
      for (const tensor of [...Object.values(first.params), ...Object.values(first.state)]) expect(tensor.location).toBe("gpu-buffer");
      // The second step reads the first one's buffers as they are.
      const second = await trainStep(onDevice, batch, { params: first.params, state: first.state, lr: 1e-2, step: 2 });
      expect(Object.values(second.params).every((tensor) => tensor.location === "gpu-buffer")).toBe(true);

      const cpuFirst = await trainStep(onCpu, batch, { params: onCpu.readParams(), state: await onCpu.zeroState("train"), lr: 1e-2, step: 1 });
      const cpuSecond = await trainStep(onCpu, batch, { params: cpuFirst.params, state: cpuFirst.state, lr: 1e-2, step: 2 });
      expectCloseLosses([first.loss, second.loss], [cpuFirst.loss, cpuSecond.loss], 1e-4);
      const trained = await onDevice.toHost(second.params);
      expect(Object.values(trained).every((tensor) => tensor.location === "cpu")).toBe(true);
      expect(largestDifference(ortTensors(trained), ortTensors(cpuSecond.params))).toBeLessThan(2e-2);
    } finally {
      await onDevice.release();
      await onCpu.release();
    }
  });

  test.each([1, 2])("train, grad accum %i, matches CPU", async (gradAccum) => {
    const options = (device: "cpu" | "webgpu"): TrainOptions => ({ artifactDir: artifacts, data, evalData, evalEvery: 2, steps: 4, batchSize: 2, gradAccum, maxLength: 12, lr: 1e-2, seed: 3, progress: false, device, outDir: makeTempDir() });
    const cpu = await train(options("cpu"));
    const lines: string[] = [];
    const gpu = await train({ ...options("webgpu"), log: (line) => lines.push(line) });
    expect(lines[0]).toBe("device: webgpu");
    expectCloseLosses(gpu.losses, cpu.losses, 1e-4);
    expect(Math.abs(gpu.lastEval!.loss - cpu.lastEval!.loss) / cpu.lastEval!.loss).toBeLessThan(1e-4);
    expect(largestDifference(fileTensors(cpu.paramsFile), fileTensors(gpu.paramsFile))).toBeLessThan(2e-2);
    // The checkpoint's optimizer state came back from device buffers as well.
    expect(largestDifference(fileTensors(cpu.checkpoints[0]), fileTensors(gpu.checkpoints[0]))).toBeLessThan(2e-2);
  });

  test("resume continues device losses", async () => {
    const base = { artifactDir: artifacts, data, steps: 4, batchSize: 4, maxLength: 12, lr: 1e-2, seed: 3, progress: false, device: "webgpu" as const };
    const dispose = jest.spyOn(ort.Tensor.prototype, "dispose");
    const whole = await train({ ...base, outDir: makeTempDir(), checkpointEvery: 2 });
    // Each step frees the buffers it replaced, and the run frees the last ones when it ends.
    const folder = new ArtifactFolder(artifacts);
    expect(dispose).toHaveBeenCalledTimes(4 * (folder.paramNames.length + folder.stateNames.length));
    dispose.mockRestore();
    const resumed = await train({ ...base, outDir: makeTempDir(), resume: whole.checkpoints[0] });
    expect(whole.checkpoints[0]).toMatch(/checkpoint-2\.safetensors$/);
    expectCloseLosses(resumed.losses, whole.losses.slice(2), 1e-5);
  });

  test("generator decodes as CPU", async () => {
    const compiled = compileForTest(path.join(DEMO_DIR, "base.onnx"), defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8 })] }));
    const tokenizer = path.join(DEMO_DIR, "tokenizer.json");
    const cpu = await Generator.open(compiled.dir, { device: "cpu", tokenizer });
    const gpu = await Generator.open(compiled.dir, { device: "webgpu", tokenizer });
    try {
      expect(gpu.device).toBe("webgpu");
      // Rows of different lengths: left padding, then 10 cached steps.
      const prompts = ["4821>", "90317>"];
      const settings = { maxNewTokens: 10, eosTokenIds: [] };
      const expected = await cpu.generate(prompts, settings);
      const actual = await gpu.generate(prompts, settings);
      expect(actual.map((row) => row.ids)).toEqual(expected.map((row) => row.ids));
      // A second call reuses the session and uploads its parameters again. Every device buffer it made is freed:
      // the parameter copies once, and each step's cache once the next step has read it (the last one at the end).
      const dispose = jest.spyOn(ort.Tensor.prototype, "dispose");
      expect((await gpu.generate([prompts[0]], settings))[0].ids).toEqual(expected[0].ids);
      const cacheInputs = compiled.manifest.graphs.infer!.inputs.filter((name) => name.startsWith("past")).length;
      expect(dispose).toHaveBeenCalledTimes(gpu.parameterInputs.length + settings.maxNewTokens * cacheInputs);
      dispose.mockRestore();

      // Parameters the caller already holds on the device are used in place and stay theirs.
      const copier = new DeviceCopier("webgpu");
      const resident = await copier.toDevice(compiled.params);
      expect((await gpu.generate([prompts[1]], { ...settings, params: resident }))[0].ids).toEqual(expected[1].ids);
      expect(Object.keys(await copier.toHost(resident)).sort()).toEqual(Object.keys(compiled.params).sort());
      releaseOutputs(resident);
      await copier.release();
    } finally {
      await cpu.release();
      await gpu.release();
    }
  });

  test("device params: prefix and merged", async () => {
    const specs = [
      defineSpec({ methods: [prefixTuning({ virtualTokens: 4, projection: { hidden: 16 } })] }),
      defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 2, alpha: 4 })], inference: { mergeAdapters: true } }),
    ];
    for (const spec of specs) {
      const compiled = compileForTest(path.join(DEMO_DIR, "base.onnx"), spec);
      const copier = new DeviceCopier("webgpu");
      const resident = await copier.toDevice(compiled.params);
      const host = await Generator.open(compiled.dir, { device: "webgpu", tokenizer: null, params: compiled.params });
      const gpu = await Generator.open(compiled.dir, { device: "webgpu", tokenizer: null, params: resident });
      try {
        const settings = { maxNewTokens: 6, eosTokenIds: [] };
        expect((await gpu.generate([[4, 7, 2, 12]], settings))[0].ids).toEqual((await host.generate([[4, 7, 2, 12]], settings))[0].ids);
        // A CPU session cannot read them, so opening one with them fails.
        await expect(Generator.open(compiled.dir, { device: "cpu", tokenizer: null, params: resident })).rejects.toThrow('is in GPU memory (location "gpu-buffer"), but this generator runs on cpu');
      } finally {
        releaseOutputs(resident);
        await copier.release();
        await gpu.release();
        await host.release();
      }
    }
  });

  test("CLI train and generate", async () => {
    const dir = path.join(makeTempDir(), "artifacts");
    const spec = path.resolve(__dirname, "../../specs/demo-lora.ts");
    expect((await runPeftc("compile", path.join(DEMO_DIR, "base.onnx"), "--spec", spec, "--out", dir, "--no-type-check")).status).toBe(0);
    const tokenizer = path.join(DEMO_DIR, "tokenizer.json");
    const rows = writeJsonl(makeDemoExamples("reverse", 8, 1).map(({ prompt, completion }) => ({ prompt, completion: `${completion}<eos>` })));
    const outputs: Record<string, string> = {};
    for (const device of ["cpu", "webgpu"]) {
      const out = path.join(makeTempDir(), device);
      const trained = await runPeftc("train", dir, "--data", rows, "--tokenizer", tokenizer, "--steps", "3", "--batch-size", "4", "--max-length", "20", "--out", out, "--device", device, "--no-progress");
      expect(trained.status).toBe(0);
      if (device === "webgpu") expect(trained.stderr).toMatch(/^device: webgpu$/m);
      const generated = await runPeftc("generate", dir, "--params", path.join(out, "params.safetensors"), "--tokenizer", tokenizer, "--prompt", "3141>", "--prompt", "27>", "--max-new-tokens", "8", "--device", device);
      expect(generated.status).toBe(0);
      expect(generated.stderr).toMatch(new RegExp(`^device: ${device}$`, "m"));
      outputs[device] = generated.stdout;
    }
    expect(outputs.webgpu).toBe(outputs.cpu);
  });

  describeCorpus("aidreams260K PyTorch export", () => {
    const dir = path.join(CORPUS_DIR, "aidreams260K");
    const targets = select.role("attn.q", "attn.v");

    test("AdamW step equals PyTorch", async () => {
      const grad = readJson<{ input_ids: number[][]; attention_mask: number[][]; labels: number[][]; values: Record<string, number[][]> }>(path.join(dir, "reference", "lora_grad.json"));
      const adam = readJson<{ updated: Record<string, number[][]>; loss_after: number }>(path.join(dir, "reference", "lora_adamw.json"));
      const spec = defineSpec({ methods: [lora({ targets, rank: 4, alpha: 8 })], train: { optimizer: adamw({ lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }) } });
      const compiled = compileForTest(path.join(dir, "model.onnx"), spec);
      const folder = new ArtifactFolder(compiled.dir, "webgpu");
      try {
        const batch = { input_ids: int64Matrix(grad.input_ids), attention_mask: int64Matrix(grad.attention_mask), labels: int64Matrix(grad.labels) };
        const params = Object.fromEntries(Object.entries(grad.values).map(([name, rows]) => [peftcLoraName(name), new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, rows[0].length])]));
        const outputs = await (await folder.session("train")).run({ ...batch, ...params, ...compiled.zeroState(), lr: floatScalar(1e-2), step: int64Scalar(1) });
        const updated = Object.fromEntries(Object.keys(params).map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
        expect(Object.values(updated).every((tensor) => tensor.location === "gpu-buffer")).toBe(true);
        const host = await folder.toHost(updated);
        for (const [name, rows] of Object.entries(adam.updated)) {
          const actual = host[peftcLoraName(name)].data as Float32Array;
          // The CPU test allows 1e-6; the device's reductions round differently.
          expect(Math.max(...rows.flat().map((value, i) => Math.abs(actual[i] - value)))).toBeLessThan(1e-5);
        }
        const after = await (await folder.session("eval")).run({ ...batch, ...updated });
        expect(Math.abs((after.loss.data[0] as number) - adam.loss_after) / adam.loss_after).toBeLessThan(1e-5);
        releaseOutputs(outputs);
        releaseOutputs(after);
      } finally {
        await folder.release();
      }
    });

    test("cached export greedy reference", async () => {
      const cases = readJson<{ cases: { prompt: string | null; new_ids: number[]; new_text: string }[] }>(path.join(dir, "reference", "generation.json")).cases;
      const compiled = compileForTest(path.join(dir, "model_with_past.onnx"), defineSpec({ methods: [lora({ targets, rank: 4, alpha: 8 })] }));
      const generator = await Generator.open(compiled.dir, { device: "webgpu", tokenizer: path.join(dir, "tokenizer.json") });
      try {
        for (const entry of cases) {
          const [result] = await generator.generate([entry.prompt ?? ""], { maxNewTokens: entry.new_ids.length, eosTokenIds: [] });
          expect(result.ids).toEqual(entry.new_ids);
          expect(result.text).toBe(entry.new_text);
        }
      } finally {
        await generator.release();
      }
    });
  });
});
