import * as fs from "node:fs";
import * as path from "node:path";
import { formatModuleTree } from "../../../compiler/inspect/format-modules";
import type { ModelSummary } from "../../../compiler/inspect/summary";
import type { DiscoveryJson, ModuleJson } from "../../../compiler/match";
import { CORPUS_DIR, describeCorpus } from "../../helpers/corpus";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { runPeftc } from "../../helpers/cli";

afterAll(removeTempDirs);

const FIXTURES = path.resolve(__dirname, "../../../fixtures");
const GOLDEN = path.resolve(__dirname, "../../compiler/match/golden");

const run = runPeftc;

async function inspectJson(file: string): Promise<ModelSummary> {
  const result = await run("inspect", file, "--json");
  expect(result.stderr).toBe("");
  return JSON.parse(result.stdout) as ModelSummary;
}

/** Returns the lines of the text report from the `modules (N)` header up to, not including, the `parameters` line. */
function moduleSection(stdout: string): string[] {
  const lines = stdout.split("\n");
  const start = lines.findIndex((line) => /^modules \(\d+\)$/.test(line));
  const end = lines.findIndex((line, i) => i > start && line.startsWith("parameters  "));
  expect(start).toBeGreaterThan(-1);
  return lines.slice(start, end);
}

/** Returns the text row of `module`: a four-space indent, then its path and a space. */
function rowOf(section: string[], module: ModuleJson): string {
  const row = section.find((line) => line.startsWith(`    ${module.path} `));
  expect([module.path, row !== undefined]).toEqual([module.path, true]);
  return row!;
}

/** Checks that every module row starts its role at one column and ends its parameter count at one column. */
function expectAlignedColumns(section: string[], modules: ModuleJson[]): void {
  const pathWidth = Math.max(...modules.map((module) => module.path.length));
  const roleColumns = new Set<number>();
  const countEnds = new Set<number>();
  for (const module of modules) {
    const row = rowOf(section, module);
    roleColumns.add(row.indexOf(module.role!, 4 + module.path.length));
    const count = module.parameterCount.toLocaleString("en-US");
    const shape = module.weightShape ? `[${module.weightShape.join(", ")}]` : "-";
    const countStart = row.indexOf(` ${count}`, row.indexOf(shape) + shape.length) + 1;
    countEnds.add(countStart + count.length);
  }
  expect([...roleColumns]).toEqual([4 + pathWidth + 2]);
  expect(countEnds.size).toBe(1);
}

/** Returns the note a row must carry for a module named by structure, or null for one named by the graph. */
function structureNote(module: ModuleJson): string | null {
  const role = module.roleFrom === "structure";
  const layer = module.layerFrom === "structure";
  if (role && layer) return "role and layer from structure";
  if (role) return "role from structure";
  if (layer) return "layer from structure";
  return null;
}

describe("peftc inspect module tree", () => {
  it("labels an unknown MLP activation with its ops", () => {
    const module: ModuleJson = {
      path: "layers.0.mlp.up",
      role: "mlp.up",
      kind: "linear",
      form: "MatMul",
      layer: 0,
      originalName: "fc1.weight",
      roleFrom: "graph",
      layerFrom: "graph",
      weight: "fc1.weight",
      weightShape: [8, 16],
      layout: "in_out",
      inFeatures: 8,
      outFeatures: 16,
      bias: null,
      parameterCount: 128,
      tiedTo: null,
    };
    const activation = { function: "unknown" as const, form: null, gated: false, ops: ["Softplus"], nodes: ["softplus"], gating: null, reason: "Softplus is not a known activation" };
    const lines = formatModuleTree({
      modules: [module],
      unrecognised: [],
      mlp: [{ layer: 0, up: module.path, gate: null, gateUp: null, split: null, down: null, activation }],
      count: 1,
      parametersInModules: 128,
      parametersOutsideModules: 0,
    });
    expect(lines).toContain("  layer 0  (mlp activation: unknown (Softplus))");
  });

  const llama = path.join(FIXTURES, "llama-tiny.onnx");

  it("groups llama-tiny modules by layer", async () => {
    const result = await run("inspect", llama);
    expect(result.status).toBe(0);
    const section = moduleSection(result.stdout);
    const groups = section.filter((line) => /^ {2}\S/.test(line) && !line.startsWith("  total"));
    expect(groups).toEqual(["  outside layers", "  layer 0  (mlp activation: silu, gated)", "  layer 1  (mlp activation: silu, gated)", "  head"]);
    expect(section[0]).toBe("modules (21)");
    expect(section).toContain("  total: 21 modules, 158,016 parameters in modules, 0 parameters outside modules");
    expect(section).toContain("unrecognised (none)");

    const q = section.find((line) => line.startsWith("    layers.1.attn.q "))!;
    expect(q.trim().split(/\s{2,}/)).toEqual(["layers.1.attn.q", "attn.q", "model.layers.1.self_attn.q_proj.weight", "[64, 64]", "4,096"]);

    const order = section.filter((line) => line.startsWith("    ")).map((line) => line.trim().split(" ")[0]);
    expect(order.slice(0, 2)).toEqual(["embed.tokens", "norm"]);
    expect(order.slice(2, 11).every((each) => each.startsWith("layers.0."))).toBe(true);
    expect(order.slice(11, 20).every((each) => each.startsWith("layers.1."))).toBe(true);
    expect(order[20]).toBe("head");
  });

  it("places the module tree after the outputs", async () => {
    const lines = (await run("inspect", llama)).stdout.split("\n");
    const outputs = lines.indexOf("outputs");
    const modules = lines.indexOf("modules (21)");
    const parameters = lines.findIndex((line) => line.startsWith("parameters  "));
    expect(outputs).toBeGreaterThan(-1);
    expect(modules).toBeGreaterThan(outputs);
    expect(parameters).toBeGreaterThan(modules);
    expect(lines.some((line) => line.startsWith("ops ("))).toBe(true);
  });

  it("prints llama-tiny modules as JSON like the golden list", async () => {
    const summary = await inspectJson(llama);
    const golden = JSON.parse(fs.readFileSync(path.join(GOLDEN, "fixture.llama-tiny.json"), "utf8")) as DiscoveryJson;
    // Every section of the golden discovery appears unchanged in the summary.
    for (const [key, value] of Object.entries(golden)) expect([key, summary.modules[key as keyof DiscoveryJson]]).toEqual([key, value]);
    expect(summary.modules.count).toBe(21);
    expect(summary.modules.parametersInModules).toBe(158_016);
    expect(summary.modules.parametersOutsideModules).toBe(0);
    expect(summary.modules.failure).toBeUndefined();
    const roles = new Set(summary.modules.modules.map((module) => module.role));
    for (const role of ["embed.tokens", "norm", "attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down", "head"]) expect(roles).toContain(role);
  });

  it("aligns the columns of every row", async () => {
    const summary = await inspectJson(llama);
    const section = moduleSection((await run("inspect", llama)).stdout);
    expectAlignedColumns(section, summary.modules.modules);
  });

  it("shows the tied GPT-2 head and counts its weight once", async () => {
    const file = path.join(FIXTURES, "gpt2-tiny-op17.onnx");
    const summary = await inspectJson(file);
    const head = summary.modules.modules.find((module) => module.path === "head")!;
    expect(head.tiedTo).toBe("embed.tokens");
    expect(summary.modules.parametersInModules).toBe(summary.parameters.count);
    expect(summary.modules.parametersOutsideModules).toBe(0);

    const section = moduleSection((await run("inspect", file)).stdout);
    expect(rowOf(section, head)).toMatch(/\s{2}tied to embed\.tokens$/);
    const tiedRows = section.filter((line) => line.startsWith("    ") && line.includes("tied to"));
    expect(tiedRows).toHaveLength(1);
  });
});

describe("peftc inspect --emit-types", () => {
  const llama = path.join(FIXTURES, "llama-tiny.onnx");

  it("writes declarations and still prints the report", async () => {
    const dir = makeTempDir();
    const target = path.join(dir, "llama.d.ts");
    const result = await run("inspect", llama, "--emit-types", target);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("modules (21)");
    const text = fs.readFileSync(target, "utf8");
    expect(text).toContain(`// Model file: ${llama}`);
    expect(text).toContain('  | "layers.1.mlp.down"');
    expect(fs.readdirSync(dir)).toEqual(["llama.d.ts"]);
  });

  it("writes declarations alongside --json", async () => {
    const dir = makeTempDir();
    const target = path.join(dir, "llama.d.ts");
    const result = await run("inspect", llama, "--json", "--emit-types", target);
    expect(result.status).toBe(0);
    expect((JSON.parse(result.stdout) as ModelSummary).modules.count).toBe(21);
    expect(fs.existsSync(target)).toBe(true);
  });

  it("exits 2 on a bad path and writes nothing", async () => {
    const dir = makeTempDir();
    fs.mkdirSync(path.join(dir, "taken.d.ts"));
    const cases: [string, string][] = [
      [path.join(dir, "missing", "llama.d.ts"), "does not exist"],
      [path.join(dir, "llama.ts"), "must end in .d.ts"],
      [path.join(dir, "taken.d.ts"), "is a folder"],
    ];
    for (const [target, reason] of cases) {
      const result = await run("inspect", llama, "--emit-types", target);
      expect([target, result.status]).toEqual([target, 2]);
      expect(result.stdout).toBe("");
      expect(result.stderr).toContain(target);
      expect(result.stderr).toContain(reason);
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(fs.readdirSync(dir)).toEqual(["taken.d.ts"]);
    expect(fs.readdirSync(path.join(dir, "taken.d.ts"))).toEqual([]);
  });

  it("is described in the help", async () => {
    const result = await run("inspect", "--help");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("--emit-types <file>");
  });
});

describeCorpus("peftc inspect module tree on the corpus", () => {
  it("lists the unrecognised initializers of bert-toy", async () => {
    const file = path.join(CORPUS_DIR, "bert-toy-pt11/bert_toy_optimized.onnx");
    const summary = await inspectJson(file);
    const unrecognised = summary.modules.unrecognised;
    expect(unrecognised.length).toBeGreaterThan(0);
    expect(summary.modules.parametersOutsideModules).toBeGreaterThan(0);
    expect(summary.modules.parametersInModules + summary.modules.parametersOutsideModules).toBe(summary.parameters.count);

    const lines = (await run("inspect", file)).stdout.split("\n");
    const header = lines.indexOf(`unrecognised (${unrecognised.length})`);
    expect(header).toBeGreaterThan(-1);
    const rows = lines.slice(header + 1, header + 1 + unrecognised.length);
    for (const [i, entry] of unrecognised.entries()) {
      expect(rows[i]).toMatch(new RegExp(`^  ${entry.kind}\\s+${entry.name.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}\\s+`));
      expect(rows[i].endsWith(entry.reason)).toBe(true);
    }
  });

  it("marks modules named by structure", async () => {
    const file = path.join(CORPUS_DIR, "genai-gpt2-past-fused-fp32/past.onnx");
    const summary = await inspectJson(file);
    const section = moduleSection((await run("inspect", file)).stdout);
    const fromStructure = summary.modules.modules.filter((module) => module.roleFrom === "structure" || module.layerFrom === "structure");
    expect(fromStructure.length).toBeGreaterThan(0);
    for (const module of summary.modules.modules) {
      const row = rowOf(section, module);
      const expected = structureNote(module);
      if (expected) expect([module.path, row.includes(expected)]).toEqual([module.path, true]);
      else expect([module.path, row.includes("from structure")]).toEqual([module.path, false]);
    }
  });

  it("keeps a 24-layer tree aligned", async () => {
    const file = path.join(CORPUS_DIR, "tfbert-qa-keras2onnx/TFBertForQuestionAnswering.onnx");
    const summary = await inspectJson(file);
    expect(summary.modules.count).toBeGreaterThan(150);
    const section = moduleSection((await run("inspect", file)).stdout);
    const groups = section.filter((line) => /^ {2}layer \d+/.test(line));
    expect(groups).toEqual(Array.from({ length: 24 }, (_, i) => `  layer ${i}  (mlp activation: gelu)`));
    expectAlignedColumns(section, summary.modules.modules);
  });
});
