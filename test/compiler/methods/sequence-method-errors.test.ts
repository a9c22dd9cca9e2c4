import * as fs from "node:fs";
import * as path from "node:path";
import { defineSpec, prefixTuning, promptTuning } from "../../../compiler/dsl";
import type { Spec } from "../../../compiler/dsl/spec";
import { compileArtifacts } from "../../../compiler/emit/compile";
import { CORPUS_DIR, describeCorpus } from "../../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

const PROMPT = defineSpec({ methods: [promptTuning({ virtualTokens: 4 })] });
const PREFIX = defineSpec({ methods: [prefixTuning({ virtualTokens: 4 })] });

/** Compiles and returns the error, checking that it points at this file and left no output folder. */
function compileError(model: string, spec: Spec): string {
  const out = path.join(makeTempDir(), "out");
  let message = "compiled";
  try {
    compileArtifacts({ modelFile: path.join(CORPUS_DIR, model), outDir: out, spec });
  } catch (error) {
    message = (error as Error).message;
    expect((error as { site?: { file?: string } }).site?.file).toBe(__filename);
  }
  expect(fs.existsSync(out)).toBe(false);
  return message;
}

describeCorpus("prompt and prefix tuning on exports they cannot change", () => {
  test("prompt tuning names a cache without Optimum's names", () => {
    expect(compileError("gpt2-megatron-pt19/gpt2_megatron.onnx", PROMPT)).toMatch(/needs cache inputs named past_key_values\.N\.key .* \(inputs: input_ids, position_ids, attention_mask, past_0\)/);
  });

  test("prompt tuning names a token embedding that reads computed ids", () => {
    expect(compileError("gpt2-past-pt16/gpt2_past.onnx", PROMPT)).toMatch(/reads "200", which Reshape "Reshape_13" computes, not the graph input input_ids/);
  });

  test("prompt tuning names a fused embedding op", () => {
    expect(compileError("genai-gpt2-past-fused-fp32/past.onnx", PROMPT)).toMatch(/fused into com\.microsoft::EmbedLayerNormalization/);
  });

  test.each(["gpt2-megatron-pt19/gpt2_megatron.onnx", "gpt2-past-pt16/gpt2_past.onnx"])("prefix tuning names the key layout of %s", (model) => {
    expect(compileError(model, PREFIX)).toMatch(/prefixTuning: cannot put a prefix in front of layer 0's keys: the keys reach the scores through (Div|Concat), not a Transpose/);
  });
});
