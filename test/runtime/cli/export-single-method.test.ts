import * as fs from "node:fs";
import * as path from "node:path";
import { bitfit, defineSpec, ia3, lora, prefixTuning, promptTuning, select, sequenceClassification } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { writePeftPromptAdapter } from "../../../compiler/emit/peft-prompt";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { compileForTest } from "../../helpers/artifacts";
import { runPeftc } from "../../helpers/cli";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const GPT2 = path.resolve(__dirname, "../../../fixtures/gpt2-tiny-op17.onnx");

describe("export-adapter with other trained tensors", () => {
  test.each<[string, Spec, RegExp]>([
    ["(IA)3 with BitFit", defineSpec({ methods: [ia3(), bitfit()] }), /tensors besides the \(IA\)3 vectors \(.*\.bias.*\), but a PEFT IA3 adapter contains the \(IA\)3 vectors alone.*Compile a spec with ia3\(\) alone/],
    ["prompt tuning with (IA)3", defineSpec({ methods: [promptTuning({ virtualTokens: 2 }), ia3()] }), /6 tensors besides the prompt embeddings \(layers\.0\.attn\.k\.ia3_l, layers\.0\.attn\.v\.ia3_l, layers\.0\.mlp\.down\.ia3_l, \.\.\.\), but a PEFT prompt-tuning adapter.*promptTuning\(\) alone/],
    ["prefix tuning with (IA)3", defineSpec({ methods: [prefixTuning({ virtualTokens: 2 }), ia3()] }), /6 tensors besides the prefix-tuning tensors \(.*\), but a PEFT prefix-tuning adapter contains the prefix-tuning tensors alone.*prefixTuning\(\) alone/],
  ])("%s is rejected", async (_name, spec, message) => {
    const artifacts = compileForTest(GPT2, spec);
    const out = path.join(makeTempDir(), "adapter");
    const result = await runPeftc("export-adapter", artifacts.dir, "--out", out);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(message);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe("export-adapter choices", () => {
  const readConfig = (dir: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8"));

  test("--lora-only exports the LoRA of a spec that also has prompt tuning", async () => {
    const artifacts = compileForTest(GPT2, defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank: 2 }), promptTuning({ virtualTokens: 2 })] }));
    const out = path.join(makeTempDir(), "adapter");
    const result = await runPeftc("export-adapter", artifacts.dir, "--out", out, "--lora-only");
    expect(result.status).toBe(0);
    expect(readConfig(out).peft_type).toBe("LORA");
    expect(result.stderr).toContain("--lora-only leaves out 1 trainable tensor that is not a LoRA weight (prompt_tuning.embeddings)");
  });

  test("the task type follows the spec's loss", async () => {
    const bert = path.resolve(__dirname, "../../../fixtures/bert-tiny-op17.onnx");
    const artifacts = compileForTest(bert, defineSpec({ methods: [ia3()], train: { loss: sequenceClassification({ classes: 2 }) } }));
    const out = path.join(makeTempDir(), "adapter");
    expect((await runPeftc("export-adapter", artifacts.dir, "--out", out)).status).toBe(0);
    expect(readConfig(out).task_type).toBe("SEQ_CLS");
    const explicit = path.join(makeTempDir(), "explicit");
    expect((await runPeftc("export-adapter", artifacts.dir, "--out", explicit, "--task-type", "FEATURE_EXTRACTION")).status).toBe(0);
    expect(readConfig(explicit).task_type).toBe("FEATURE_EXTRACTION");
  });

  test("a text init without a tokenizer name is written as RANDOM alone", () => {
    const embeddings = Tensor.fromArray("prompt_embeddings", DataType.FLOAT, [2, 4], new Float32Array(8));
    const input = { embeddings, init: { text: "Once upon a time" }, numLayers: 2, numAttentionHeads: 4 };
    const anonymous = writePeftPromptAdapter(path.join(makeTempDir(), "adapter"), input).config;
    expect(anonymous).toMatchObject({ prompt_tuning_init: "RANDOM", prompt_tuning_init_text: null, tokenizer_name_or_path: null });
    const named = writePeftPromptAdapter(path.join(makeTempDir(), "adapter"), { ...input, baseModel: "bigscience/bloomz-560m" }).config;
    expect(named).toMatchObject({ prompt_tuning_init: "TEXT", prompt_tuning_init_text: "Once upon a time", tokenizer_name_or_path: "bigscience/bloomz-560m" });
  });
});
