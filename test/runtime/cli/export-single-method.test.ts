import * as fs from "node:fs";
import * as path from "node:path";
import { bitfit, defineSpec, ia3, prefixTuning, promptTuning } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
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
