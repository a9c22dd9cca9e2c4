import * as path from "node:path";
import { defineSpec, ia3, prefixTuning } from "../../compiler/dsl";
import type { Spec } from "../../compiler/dsl/spec";
import { compileArtifacts } from "../../compiler/emit/compile";
import { readSafetensors, writeSafetensors } from "../../compiler/emit/safetensors";
import { Tensor } from "../../compiler/onnx/tensor";
import { Generator } from "../../runtime/generator";
import { makeTempDir, removeTempDirs } from "../helpers/temp";

afterAll(removeTempDirs);

const LLAMA = path.resolve(__dirname, "../../fixtures/llama-tiny.onnx");
const PROMPT = [1, 188, 155, 60, 75, 229];

/** Writes the folder's params with every value moved, as training would, and returns the file. */
function trainedParams(dir: string): string {
  const { tensors } = readSafetensors(path.join(dir, "params.safetensors"));
  const moved = new Map<string, Tensor>();
  for (const [name, tensor] of tensors) {
    const values = Float32Array.from(tensor.data() as ArrayLike<number>, (value, i) => value + 0.3 * Math.sin(i * 0.37 + name.length));
    moved.set(name, Tensor.fromArray(name, tensor.dtype, [...tensor.dims], values));
  }
  const file = path.join(makeTempDir(), "trained.safetensors");
  writeSafetensors(file, moved);
  return file;
}

async function greedy(dir: string, params?: string): Promise<number[]> {
  const generator = await Generator.open(dir, { tokenizer: null, params });
  try {
    return (await generator.generate([PROMPT], { maxNewTokens: 12 }))[0].ids;
  } finally {
    await generator.release();
  }
}

describe("trained values and merged inference graphs", () => {
  test.each<[string, (merge: boolean) => Spec]>([
    ["(IA)3", (merge) => defineSpec({ methods: [ia3()], inference: { mergeAdapters: merge } })],
    ["prefix tuning with a projection", (merge) => defineSpec({ methods: [prefixTuning({ virtualTokens: 4, projection: { hidden: 16 } })], inference: { mergeAdapters: merge } })],
  ])("%s: compile --params folds trained values, generate --params is rejected", async (_name, spec) => {
    const merged = path.join(makeTempDir(), "merged");
    compileArtifacts({ modelFile: LLAMA, outDir: merged, spec: spec(true) });
    const trained = trainedParams(merged);
    await expect(Generator.open(merged, { tokenizer: null, params: trained })).rejects.toThrow(/compiled with inference.mergeAdapters, so .* folded into its weights.*--params TRAINED.safetensors/);
    // The folder's own values are the folded ones, so passing them is allowed.
    await expect(greedy(merged, path.join(merged, "params.safetensors"))).resolves.toHaveLength(12);

    const unmerged = path.join(makeTempDir(), "unmerged");
    compileArtifacts({ modelFile: LLAMA, outDir: unmerged, spec: spec(false) });
    const refolded = path.join(makeTempDir(), "refolded");
    compileArtifacts({ modelFile: LLAMA, outDir: refolded, spec: spec(true), paramsFile: trained });
    const expected = await greedy(unmerged, trained);
    expect(await greedy(refolded)).toEqual(expected);
    expect(await greedy(merged)).not.toEqual(expected);
  });

  test("compile --params rejects a file for another spec", () => {
    const dir = path.join(makeTempDir(), "ia3");
    compileArtifacts({ modelFile: LLAMA, outDir: dir, spec: defineSpec({ methods: [ia3()] }) });
    const other = path.join(makeTempDir(), "other");
    expect(() => compileArtifacts({ modelFile: LLAMA, outDir: other, spec: defineSpec({ methods: [prefixTuning({ virtualTokens: 4 })] }), paramsFile: path.join(dir, "params.safetensors") })).toThrow(/has no tensor prefix\.layers\.0\.key.*Pass the params\.safetensors/);
  });
});
