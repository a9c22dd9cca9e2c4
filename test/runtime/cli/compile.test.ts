import * as fs from "node:fs";
import * as path from "node:path";
import type { Manifest } from "../../../compiler/emit/manifest";
import { readSafetensors, writeSafetensors } from "../../../compiler/emit/safetensors";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { CORPUS_DIR, describeCorpus } from "../../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { runPeftc } from "../../helpers/cli";

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const LLAMA = path.join(FIXTURES, "llama-tiny.onnx");
const GPT2 = path.join(FIXTURES, "gpt2-tiny-op17.onnx");

afterAll(removeTempDirs);

const run = runPeftc;

/** Writes a spec into a fresh folder outside the repository, so "peftc" resolves without node_modules. */
function writeSpec(lines: string[]): string {
  const file = path.join(makeTempDir(), "spec.ts");
  fs.writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

/** Returns the 1-based line and column of the first `needle` in the spec, as errors report them. */
function positionOf(file: string, needle: string): string {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  const line = lines.findIndex((text) => text.includes(needle));
  return `${file}:${line + 1}:${lines[line].indexOf(needle) + 1}`;
}

describe("peftc compile", () => {
  test("compiles a spec and prints PEFT's summary", async () => {
    const spec = writeSpec([
      'import { defineSpec, lora, select } from "peftc";',
      "export default defineSpec({ methods: [lora({ targets: select.role(\"attn.q\", \"attn.v\"), rank: 4 })] });",
    ]);
    const out = path.join(makeTempDir(), "out");
    const result = await run("compile", LLAMA, "--spec", spec, "--out", out);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^trainable params: 1,792 \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}\n/);
    expect(result.stdout).toContain(`wrote ${out}: eval.onnx, grad.onnx, train.onnx, apply.onnx, infer.onnx, params.safetensors, model.d.ts, manifest.json`);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, "manifest.json"), "utf8")) as Manifest;
    expect(manifest.spec.file).toBe("spec.ts");
  });

  test("same spec in another folder gives the same bytes", async () => {
    const lines = ['import { defineSpec, lora, select } from "peftc";', 'export default defineSpec({ methods: [lora({ targets: select.allLinear() })] });'];
    const outs = [path.join(makeTempDir(), "a"), path.join(makeTempDir(), "b")];
    for (const out of outs) expect((await run("compile", GPT2, "--spec", writeSpec(lines), "--out", out)).status).toBe(0);
    for (const file of fs.readdirSync(outs[0])) {
      expect(fs.readFileSync(path.join(outs[1], file)).equals(fs.readFileSync(path.join(outs[0], file)))).toBe(true);
    }
  });

  test("rank too large points at the rank option", async () => {
    const spec = writeSpec([
      'import { defineSpec, lora, select } from "peftc";',
      "export default defineSpec({",
      "  methods: [",
      "    lora({",
      '      targets: select.role("attn.k"),',
      "      rank: 48,",
      "    }),",
      "  ],",
      "});",
    ]);
    const out = path.join(makeTempDir(), "out");
    const result = await run("compile", LLAMA, "--spec", spec, "--out", out);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${positionOf(spec, "rank: 48")}: lora: option "rank" is 48`);
    expect(result.stderr).toContain("at most 32");
    expect(fs.existsSync(out)).toBe(false);
  });

  test("rankPattern entry too large points at its key", async () => {
    const spec = writeSpec([
      'import { defineSpec, lora, select } from "peftc";',
      "export default defineSpec({",
      '  methods: [lora({ targets: select.role("attn.k"), rankPattern: {',
      '    "layers.1.attn.k": 33,',
      "  } })],",
      "});",
    ]);
    const result = await run("compile", LLAMA, "--spec", spec, "--out", path.join(makeTempDir(), "out"));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${positionOf(spec, '"layers.1.attn.k"')}: lora: option "rankPattern.layers.1.attn.k" is 33`);
  });

  test("empty selector points at the selector and lists close paths", async () => {
    const spec = writeSpec([
      'import { defineSpec, lora, select } from "peftc";',
      "export default defineSpec({",
      '  methods: [lora({ targets: select.path("layers.*.attn.query") })],',
      "});",
    ]);
    const result = await run("compile", LLAMA, "--spec", spec, "--out", path.join(makeTempDir(), "out"));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${positionOf(spec, "path(\"layers")}: lora targets:`);
    expect(result.stderr).toContain('select.path("layers.*.attn.query") matches no module of the model');
    expect(result.stderr).toMatch(/Closest module paths: layers\.0\.attn\.q, /);
  });

  test("one unmatched glob of several is an error at that glob", async () => {
    const spec = writeSpec([
      'import { defineSpec, lora } from "peftc";',
      "export default defineSpec({",
      '  methods: [lora({ targets: ["layers.*.attn.q",',
      '    "layers.*.atn.v"] })],',
      "});",
    ]);
    const out = path.join(makeTempDir(), "out");
    const result = await run("compile", LLAMA, "--spec", spec, "--out", out);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${positionOf(spec, '"layers.*.atn.v"')}: lora targets: "layers.*.atn.v" in select.path("layers.*.attn.q", "layers.*.atn.v") matches no module of the model.`);
    expect(fs.existsSync(out)).toBe(false);
  });

  test("--types rejects a file that is not .d.ts", async () => {
    const spec = writeSpec(['import { defineSpec, lora, select } from "peftc";', 'export default defineSpec({ methods: [lora({ targets: select.role("attn.q") })] });']);
    const result = await run("compile", LLAMA, "--spec", spec, "--types", spec, "--out", path.join(makeTempDir(), "out"));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`--types ${spec} is not a declaration file: it must end in .d.ts (or .d.mts, .d.cts).`);
  });

  test("type error reports file:line:col", async () => {
    const spec = writeSpec([
      'import { defineSpec, lora, select } from "peftc";',
      "export default defineSpec({",
      '  methods: [lora({ targets: select.role("attn.q"), rank: "eight" })],',
      "});",
    ]);
    const result = await run("compile", LLAMA, "--spec", spec, "--out", path.join(makeTempDir(), "out"));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${positionOf(spec, "rank:")}: Type 'string' is not assignable to type 'number'`);
  });

  test("unknown option reports file:line:col", async () => {
    const spec = writeSpec([
      'import { defineSpec, lora, select } from "peftc";',
      "export default defineSpec({",
      '  methods: [lora({ targets: select.role("attn.q"), rnak: 4 })],',
      "});",
    ]);
    const result = await run("compile", LLAMA, "--spec", spec, "--out", path.join(makeTempDir(), "out"));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${positionOf(spec, "rnak")}:`);
    expect(result.stderr).toMatch(/'rnak' does not exist in type 'LoraOptions'/);
  });

  test("model declarations make a missing role a type error", async () => {
    const dir = makeTempDir();
    const model = path.join(dir, "llama.onnx");
    fs.copyFileSync(LLAMA, model);
    expect((await run("inspect", model, "--emit-types", path.join(dir, "llama.d.ts"))).status).toBe(0);
    const spec = writeSpec(['import { defineSpec, lora, select } from "peftc";', 'export default defineSpec({ methods: [lora({ targets: select.role("attn.qkv") })] });']);
    const result = await run("compile", model, "--spec", spec, "--out", path.join(makeTempDir(), "out"));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${positionOf(spec, '"attn.qkv"')}:`);
  });

  test("missing spec and adapter is a usage error", async () => {
    const result = await run("compile", LLAMA, "--out", path.join(makeTempDir(), "out"));
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/nothing to compile/);
  });
});

describe("peftc compile and export-adapter", () => {
  test("an exported adapter compiles back to the same tensors", async () => {
    const spec = writeSpec(['import { defineSpec, lora, select } from "peftc";', 'export default defineSpec({ methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 16, init: "gaussian" })] });']);
    const first = path.join(makeTempDir(), "first");
    expect((await run("compile", GPT2, "--spec", spec, "--out", first)).status).toBe(0);
    const adapter = path.join(makeTempDir(), "adapter");
    const exported = await run("export-adapter", first, "--out", adapter);
    expect(exported.stderr).toBe("");
    expect(exported.status).toBe(0);
    const config = JSON.parse(fs.readFileSync(path.join(adapter, "adapter_config.json"), "utf8")) as { r: number; fan_in_fan_out: boolean };
    // Q and V parts of c_attn become one rank-8 LoRA on the whole c_attn.
    expect(config.r).toBe(8);
    expect(config.fan_in_fan_out).toBe(true);

    const second = path.join(makeTempDir(), "second");
    const reloaded = await run("compile", GPT2, "--adapter", adapter, "--out", second);
    expect(reloaded.stderr).toBe("");
    expect(reloaded.status).toBe(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(second, "manifest.json"), "utf8")) as Manifest;
    expect(manifest.lora.map((record) => [record.path, record.rank])).toEqual([
      ["layers.0.attn.qkv", 8],
      ["layers.1.attn.qkv", 8],
    ]);
  });
});

describe("peftc compile --adapter", () => {
  test("rejects tensors it would not apply", async () => {
    const spec = writeSpec(['import { defineSpec, lora, select } from "peftc";', 'export default defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank: 4 })] });']);
    const first = path.join(makeTempDir(), "first");
    expect((await run("compile", LLAMA, "--spec", spec, "--out", first)).status).toBe(0);
    const adapter = path.join(makeTempDir(), "adapter");
    expect((await run("export-adapter", first, "--out", adapter)).status).toBe(0);
    const weightsFile = path.join(adapter, "adapter_model.safetensors");
    const { tensors } = readSafetensors(weightsFile);
    const biasKey = "base_model.model.model.layers.0.self_attn.q_proj.bias";
    tensors.set(biasKey, Tensor.fromArray(biasKey, DataType.FLOAT, [64], new Float32Array(64).fill(0.5)));
    writeSafetensors(weightsFile, tensors);

    const result = await run("compile", LLAMA, "--adapter", adapter, "--out", path.join(makeTempDir(), "second"));
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("the weights file holds tensors that are not LoRA weights (model.layers.0.self_attn.q_proj.bias)");
  });
});

describeCorpus("peftc compile on aidreams260K", () => {
  test("LoRA of the reference folder gives its counts", async () => {
    const spec = writeSpec(['import { defineSpec, lora, select } from "peftc";', 'export default defineSpec({ methods: [lora({ targets: select.name("q_proj", "v_proj"), rank: 4, alpha: 8 })] });']);
    const result = await run("compile", path.join(CORPUS_DIR, "aidreams260K", "model_nofold.onnx"), "--spec", spec, "--out", path.join(makeTempDir(), "out"));
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^trainable params: 4,096 \|\| all params: 235,072 \|\| trainable%: 1\.7424\n/);
  });
});
