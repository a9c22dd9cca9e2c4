import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { defineSpec, lora, select } from "../../compiler/dsl";
import { writeSafetensors } from "../../compiler/emit/safetensors";
import { DataType } from "../../compiler/onnx/dtype";
import { Tensor } from "../../compiler/onnx/tensor";
import { Generator, type TokenEvent } from "../../runtime";
import { compileForTest, readJson } from "../helpers/artifacts";
import { CORPUS_DIR, describeCorpus } from "../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../helpers/temp";

afterAll(removeTempDirs);

/** LoRA with PEFT's default init: B is zero, so the adapted model generates as the base model does. */
const SPEC = defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8 })] });

interface GenerationCase {
  prompt: string | null;
  prompt_ids: number[];
  new_ids: number[];
  text: string;
  new_text: string;
}

const MODEL_DIR = path.join(CORPUS_DIR, "aidreams260K");
const TOKENIZER = path.join(MODEL_DIR, "tokenizer.json");

/** Non-zero LoRA B tensors, so the adapter changes the logits. */
function adaptedParams(params: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  return Object.fromEntries(
    Object.entries(params).map(([name, tensor]) => [name, name.endsWith("lora_B") ? new ort.Tensor("float32", Float32Array.from(tensor.data as Float32Array, (_, i) => Math.sin(i * 0.7) * 0.5), tensor.dims) : tensor]),
  );
}

describeCorpus("Generator on aidreams260K", () => {
  const reference = readJson<{ cases: GenerationCase[] }>(path.join(MODEL_DIR, "reference", "generation.json")).cases;
  const prompts = reference.map((entry) => entry.prompt ?? "");
  const generators = new Map<string, Generator>();
  const params = new Map<string, Record<string, ort.Tensor>>();

  beforeAll(async () => {
    for (const file of ["model.onnx", "model_with_past.onnx"]) {
      const artifacts = compileForTest(path.join(MODEL_DIR, file), SPEC);
      generators.set(file, await Generator.open(artifacts.dir, { tokenizer: TOKENIZER }));
      params.set(file, artifacts.params);
    }
  });

  afterAll(async () => {
    for (const generator of generators.values()) await generator.release();
  });

  const FILES = ["model.onnx", "model_with_past.onnx"];

  test("only cached export takes position_ids", () => {
    expect(generators.get("model_with_past.onnx")!.manifest.graphs.infer!.inputs).toContain("position_ids");
    expect(generators.get("model.onnx")!.manifest.graphs.infer!.inputs).not.toContain("position_ids");
  });

  test.each(FILES)("%s: greedy reproduces the reference ids and text", async (file) => {
    const generator = generators.get(file)!;
    for (const entry of reference) {
      const [result] = await generator.generate([entry.prompt ?? ""], { maxNewTokens: entry.new_ids.length, eosTokenIds: [] });
      expect(result.promptIds).toEqual(entry.prompt_ids);
      expect(result.ids).toEqual(entry.new_ids);
      expect(result.text).toBe(entry.new_text);
      expect((entry.prompt ?? "") + result.text).toBe(entry.text);
      expect(result.finishReason).toBe("length");
    }
  });

  test.each(FILES)("%s: left-padded batch equals each prompt alone", async (file) => {
    const cases = reference.filter((entry) => entry.prompt !== null);
    const results = await generators.get(file)!.generate(
      cases.map((entry) => entry.prompt!),
      { maxNewTokens: 100, eosTokenIds: [] },
    );
    expect(new Set(cases.map((entry) => entry.prompt_ids.length)).size).toBe(3);
    for (const [row, entry] of cases.entries()) {
      expect(results[row].ids).toEqual(entry.new_ids);
      expect(results[row].text).toBe(entry.new_text);
    }
  });

  test("sampling with a seed is deterministic", async () => {
    const generator = generators.get("model.onnx")!;
    const options = { maxNewTokens: 40, temperature: 1.2, topK: 50, topP: 0.95, seed: 7 };
    const first = await generator.generate(prompts, options);
    const again = await generator.generate(prompts, options);
    const otherSeed = await generator.generate(prompts, { ...options, seed: 8 });
    expect(again.map((result) => result.ids)).toEqual(first.map((result) => result.ids));
    expect(otherSeed.map((result) => result.ids)).not.toEqual(first.map((result) => result.ids));
    const greedy = await generator.generate(prompts, { maxNewTokens: 40 });
    expect(first.map((result) => result.ids)).not.toEqual(greedy.map((result) => result.ids));
  });

  test("top-k 1 and tiny top-p are greedy", async () => {
    const generator = generators.get("model_with_past.onnx")!;
    const greedy = (await generator.generate(prompts, { maxNewTokens: 30 })).map((result) => result.ids);
    const topK = await generator.generate(prompts, { maxNewTokens: 30, temperature: 2, topK: 1, seed: 3 });
    const topP = await generator.generate(prompts, { maxNewTokens: 30, temperature: 2, topP: 1e-6, seed: 3 });
    expect(topK.map((result) => result.ids)).toEqual(greedy);
    expect(topP.map((result) => result.ids)).toEqual(greedy);
    for (const [row, entry] of reference.entries()) expect(greedy[row]).toEqual(entry.new_ids.slice(0, 30));
  });

  test("repetition penalty changes greedy output", async () => {
    const generator = generators.get("model.onnx")!;
    const entry = reference[2];
    const [penalised] = await generator.generate([entry.prompt!], { maxNewTokens: 40, repetitionPenalty: 1.5 });
    const [again] = await generator.generate([entry.prompt!], { maxNewTokens: 40, repetitionPenalty: 1.5 });
    expect(penalised.ids).not.toEqual(entry.new_ids.slice(0, 40));
    expect(again.ids).toEqual(penalised.ids);
  });

  test("stop string ends a row and is cut off", async () => {
    const entry = reference[2];
    const stopAt = entry.new_text.indexOf("tapestry");
    expect(stopAt).toBeGreaterThan(0);
    const [result] = await generators.get("model.onnx")!.generate([entry.prompt!], { maxNewTokens: 100, stop: ["tapestry", "never appears"] });
    expect(result.finishReason).toBe("stop");
    expect(result.text).toBe(entry.new_text.slice(0, stopAt));
    expect(result.ids.length).toBeLessThan(entry.new_ids.length);
    expect(result.ids).toEqual(entry.new_ids.slice(0, result.ids.length));
  });

  test("EOS token ends a row", async () => {
    const entry = reference[1];
    const eos = entry.new_ids[5];
    const firstAt = entry.new_ids.indexOf(eos);
    const results = await generators.get("model.onnx")!.generate([entry.prompt!, reference[3].prompt!], { maxNewTokens: 100, eosTokenIds: [eos] });
    expect(results[0].finishReason).toBe("eos");
    expect(results[0].ids).toEqual(entry.new_ids.slice(0, firstAt + 1));
    // The other row goes on while the first has stopped.
    const otherStop = reference[3].new_ids.indexOf(eos);
    expect(results[1].ids).toEqual(otherStop >= 0 ? reference[3].new_ids.slice(0, otherStop + 1) : reference[3].new_ids);
  });

  test("token limit ends a row", async () => {
    const [result] = await generators.get("model.onnx")!.generate([prompts[1]], { maxNewTokens: 3 });
    expect(result.ids).toEqual(reference[1].new_ids.slice(0, 3));
    expect(result.finishReason).toBe("length");
    const [none] = await generators.get("model.onnx")!.generate([prompts[1]], { maxNewTokens: 0 });
    expect(none.ids).toEqual([]);
    expect(none.text).toBe("");
  });

  test("streamed deltas concatenate to the final text", async () => {
    const events: TokenEvent[] = [];
    const results = await generators.get("model_with_past.onnx")!.generate(prompts, { maxNewTokens: 60, stop: ["Contrast"], onToken: (event) => events.push(event) });
    for (const [row, result] of results.entries()) {
      const own = events.filter((event) => event.row === row);
      expect(own.map((event) => event.text).join("")).toBe(result.text);
      expect(own.flatMap((event) => event.tokenIds)).toEqual(result.ids);
      expect(own.filter((event) => event.finishReason !== null)).toHaveLength(1);
      expect(own[own.length - 1].finishReason).toBe(result.finishReason);
    }
    expect(results.map((result) => result.finishReason)).toContain("stop");
    // A delta never shows the start of a stop string that later completes.
    expect(events.some((event) => event.text.includes("Contr"))).toBe(false);
  });

  test.each(FILES)("%s: per-call params change the output", async (file) => {
    const generator = generators.get(file)!;
    const entry = reference[1];
    const adapted = adaptedParams(params.get(file)!);
    const [changed] = await generator.generate([entry.prompt!], { maxNewTokens: 20, params: adapted });
    expect(changed.ids).not.toEqual(entry.new_ids.slice(0, 20));

    // The same tensors from a safetensors file give the same tokens, and the next call is back on the defaults.
    const file2 = path.join(makeTempDir(), "adapter.safetensors");
    const tensors = new Map(Object.entries(adapted).map(([name, tensor]) => [name, Tensor.fromArray(name, DataType.FLOAT, tensor.dims as number[], tensor.data as Float32Array)]));
    writeSafetensors(file2, tensors);
    const [fromFile] = await generator.generate([entry.prompt!], { maxNewTokens: 20, params: file2 });
    expect(fromFile.ids).toEqual(changed.ids);
    const [restored] = await generator.generate([entry.prompt!], { maxNewTokens: 20 });
    expect(restored.ids).toEqual(entry.new_ids.slice(0, 20));
  });

  test("unknown parameter name is rejected", async () => {
    const bogus = { "not.a.param": new ort.Tensor("float32", new Float32Array(1), [1]) };
    await expect(generators.get("model.onnx")!.generate([prompts[1]], { params: bogus })).rejects.toMatchObject({ code: "E_GENERATE", message: expect.stringContaining("not.a.param") });
  });

  test("parameter of the wrong shape is rejected", async () => {
    const name = generators.get("model.onnx")!.parameterInputs[0];
    const wrong = { [name]: new ort.Tensor("float32", new Float32Array(2), [2]) };
    await expect(generators.get("model.onnx")!.generate([prompts[1]], { params: wrong })).rejects.toMatchObject({ code: "E_GENERATE", message: expect.stringContaining("shape [2]") });
  });

  test.each([
    [{ maxNewTokens: -1 }, "maxNewTokens"],
    [{ maxNewTokens: 1.5 }, "maxNewTokens"],
    [{ temperature: -0.1 }, "temperature"],
    [{ topK: -2 }, "topK"],
    [{ topP: 0 }, "topP"],
    [{ topP: 1.5 }, "topP"],
    [{ repetitionPenalty: 0 }, "repetitionPenalty"],
    [{ seed: -1 }, "seed"],
    [{ stop: [""] }, "stop"],
  ])("invalid option %j is rejected", async (options, name) => {
    await expect(generators.get("model.onnx")!.generate([prompts[1]], options)).rejects.toMatchObject({ code: "E_GENERATE", message: expect.stringContaining(name) });
  });

  test("id prompts need no tokenizer", async () => {
    const dir = generators.get("model.onnx")!.dir;
    const generator = await Generator.open(dir, { tokenizer: null });
    try {
      const [result] = await generator.generate([reference[1].prompt_ids], { maxNewTokens: 10 });
      expect(result.ids).toEqual(reference[1].new_ids.slice(0, 10));
      expect(result.text).toBeNull();
      await expect(generator.generate(["text"])).rejects.toMatchObject({ code: "E_GENERATE" });
    } finally {
      await generator.release();
    }
  });
});

describe("Generator.open", () => {
  test("folder without a manifest is rejected", async () => {
    await expect(Generator.open(makeTempDir())).rejects.toMatchObject({ code: "E_ARTIFACT", message: expect.stringContaining("manifest.json") });
  });
});

describe("Generator on fixture decoders", () => {
  const fixtures = path.resolve(__dirname, "../../fixtures");
  // Token ids below 256, the smallest fixture vocabulary.
  const prompts = [
    [1, 188, 155, 60, 75, 229, 139],
    [1, 115, 174],
    [1, 127, 246, 62, 30],
  ];

  test.each(["llama-tiny.onnx", "gpt2-tiny-op17.onnx"])("%s: left-padded batch equals each prompt alone", async (file) => {
    const artifacts = compileForTest(path.join(fixtures, file), SPEC);
    const generator = await Generator.open(artifacts.dir);
    try {
      expect(generator.tokenizer).toBeNull();
      const batch = await generator.generate(prompts, { maxNewTokens: 12 });
      for (const [row, prompt] of prompts.entries()) {
        const [alone] = await generator.generate([prompt], { maxNewTokens: 12 });
        expect(alone.ids).toHaveLength(12);
        expect(batch[row].ids).toEqual(alone.ids);
      }
      const sampled = await generator.generate(prompts, { maxNewTokens: 12, temperature: 1, seed: 1 });
      const again = await generator.generate(prompts, { maxNewTokens: 12, temperature: 1, seed: 1 });
      expect(again.map((result) => result.ids)).toEqual(sampled.map((result) => result.ids));
    } finally {
      await generator.release();
    }
  });
});
