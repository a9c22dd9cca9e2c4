import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadModel } from "../../compiler/ir/io";
import { DEMO_BASE_CONFIG, pretrainDemoBase } from "../../fixtures/demo/pretrain";
import { buildLlama } from "../../fixtures/models/llama";
import { EXIT_USAGE, runCli } from "../../runtime/cli/main";
import { runDemo } from "../../runtime/demo";
import { makeTempDir, removeTempDirs } from "../helpers/temp";

afterAll(removeTempDirs);

const FIXTURE_DIR = path.resolve(__dirname, "../../fixtures/demo");
const SHIPPED_FILES = ["base.onnx", "tokenizer.json", "tokenizer_config.json"];

function demoTempDirs(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith("peftc-demo-"));
}

describe("peftc demo", () => {
  test("LoRA learns reversal the base cannot do", async () => {
    const outDir = makeTempDir("peftc-demo-test-");
    // 300 of the default 500 steps keep the test short. Measured with 300 steps on 2 CPU cores:
    // base 1.5% (3/200: the base copies, which is right only for palindromes), adapted 99.5%, in 5 s.
    const result = await runDemo({ steps: 300, evalExamples: 200, outDir });
    expect(result.summary).toMatch(/^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: [\d.]+$/);
    expect(result.task).toBe("reverse");
    expect(result.base.samples).toHaveLength(200);
    expect(result.base.accuracy).toBeLessThan(0.1);
    expect(result.adapted.accuracy).toBeGreaterThan(0.9);
    expect(result.lastLoss).toBeLessThan(result.firstLoss);
    expect(fs.existsSync(path.join(outDir, "artifacts", "manifest.json"))).toBe(true);
    expect(fs.existsSync(path.join(outDir, "train", "params.safetensors"))).toBe(true);
  });

  test("shipped base model copies digits", async () => {
    const before = demoTempDirs();
    // Measured: 100% (200/200). Without outDir the demo must delete its temporary folder.
    const result = await runDemo({ task: "copy", steps: 1, evalExamples: 200 });
    expect(result.base.accuracy).toBeGreaterThan(0.95);
    expect(result.outDir).toBeNull();
    expect(demoTempDirs()).toEqual(before);
  });

  test("every shipped weight was trained", () => {
    const initial = buildLlama(DEMO_BASE_CONFIG).graph.initializers;
    const shipped = loadModel(path.join(FIXTURE_DIR, "base.onnx")).graph.initializers;
    expect([...shipped.keys()].sort()).toEqual([...initial.keys()].sort());
    for (const [name, value] of initial) {
      const before = value.initializer!.data() as Float32Array;
      const after = shipped.get(name)!.initializer!.data() as Float32Array;
      const changed = after.some((weight, index) => weight !== before[index]);
      expect({ name, changed }).toEqual({ name, changed: true });
    }
  });

  // Weights depend on onnxruntime's CPU kernels, which differ between instruction sets, so
  // only what does not go through them is compared byte for byte: the tokenizer files and the
  // graph's structure. (On the x86-64 machine that wrote the fixtures, three runs matched byte for byte.)
  test("pretraining script reproduces shipped files", async () => {
    const outDir = makeTempDir("peftc-pretrain-test-");
    await pretrainDemoBase(outDir, () => {});
    for (const file of SHIPPED_FILES.filter((name) => name.endsWith(".json"))) {
      const same = fs.readFileSync(path.join(outDir, file)).equals(fs.readFileSync(path.join(FIXTURE_DIR, file)));
      expect({ file, same }).toEqual({ file, same: true });
    }
    const structure = (file: string): string[] => {
      const model = loadModel(file);
      return [...model.graph.nodes.map((node) => `${node.opType}:${node.name}`), ...[...model.graph.initializers.values()].map((value) => `${value.name}:${value.initializer!.dims.join("x")}`)];
    };
    expect(structure(path.join(outDir, "base.onnx"))).toEqual(structure(path.join(FIXTURE_DIR, "base.onnx")));
  });

  test("demo rejects zero steps", async () => {
    const errors: string[] = [];
    const status = await runCli(["demo", "--steps", "0"], { stdout: () => {}, stderr: (text) => errors.push(text) });
    expect(status).toBe(EXIT_USAGE);
    expect(errors.join("")).toContain("expected a positive integer");
  });
});
