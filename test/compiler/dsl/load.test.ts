import * as fs from "node:fs";
import * as path from "node:path";
import { Selector, SpecError, SpecTypeError, loadSpec } from "../../../compiler/dsl";
import { PeftcError } from "../../../compiler/errors";
import { loadModel } from "../../../compiler/ir/io";
import { discoverModules, discoveryToJson } from "../../../compiler/match";
import { moduleTypeDeclarations } from "../../../compiler/match/emit-types";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import type { LoraMethod } from "../../../compiler/dsl/lora";

afterAll(removeTempDirs);

const FIXTURES_DIR = path.resolve(__dirname, "../../../fixtures");

/** Writes `files` (name to text) into a fresh folder outside the repository and returns the folder. */
function writeFiles(files: Record<string, string>): string {
  const dir = makeTempDir("peftc-spec-");
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

/** Returns the 1-based line and column where `marker` starts in `text`; `occurrence` picks a later match. */
function positionOf(text: string, marker: string, occurrence = 1): { line: number; column: number } {
  let index = -1;
  for (let i = 0; i < occurrence; i++) {
    index = text.indexOf(marker, index + 1);
    if (index < 0) throw new Error(`marker ${JSON.stringify(marker)} not found`);
  }
  const before = text.slice(0, index).split("\n");
  return { line: before.length, column: before[before.length - 1].length + 1 };
}

/** Runs `action` and returns what it threw, failing the test when it returns normally. */
function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error("expected an exception");
}

/** Writes the module declarations of a fixture model into `dir` and returns the file's path. */
function writeModelTypes(dir: string, model: string): string {
  const file = path.join(FIXTURES_DIR, model);
  const typesFile = path.join(dir, "model.d.ts");
  fs.writeFileSync(typesFile, moduleTypeDeclarations(discoveryToJson(discoverModules(loadModel(file))), file));
  return typesFile;
}

const VALID = `import { adamw, defineSpec, lora, select } from "peftc";

export default defineSpec({
  methods: [
    lora({ targets: select.role("attn.q", "attn.v"), rank: 4, alpha: 8, dropout: 0.05 }),
  ],
  train: { optimizer: adamw({ lr: 2e-4 }) },
});
`;

/** Builds a spec whose lora options are `options`, on one line of their own. */
function loraSpec(options: string): string {
  return `import { defineSpec, lora, select } from "peftc";

export default defineSpec({
  methods: [
    lora({ targets: select.role("attn.q"), ${options} }),
  ],
});
`;
}

describe("loadSpec", () => {
  it("loads a valid spec from a folder outside the repository", () => {
    const dir = writeFiles({ "spec.ts": VALID });
    const loaded = loadSpec(path.join(dir, "spec.ts"));

    expect(loaded.file).toBe(path.join(dir, "spec.ts"));
    expect(loaded.source).toBe(VALID);
    expect(loaded.spec.kind).toBe("peftc.spec");
    const method = loaded.spec.methods[0] as LoraMethod;
    expect(method.rank).toBe(4);
    expect(method.dropout).toBe(0.05);
    expect(loaded.spec.train.optimizer.lr).toBe(2e-4);
    // The spec's "peftc" is the caller's package instance.
    expect(method.targets).toBeInstanceOf(Selector);
  });

  it("records sites at TypeScript positions", () => {
    const dir = writeFiles({ "spec.ts": VALID });
    const loaded = loadSpec(path.join(dir, "spec.ts"));
    const method = loaded.spec.methods[0] as LoraMethod;

    // V8 reports a call through `(0, peftc_1.lora)(...)` at its opening parenthesis.
    expect(method.site).toEqual({ file: loaded.file, ...positionOf(VALID, "({ targets") });
    // A method call reports the property name.
    expect(method.targets.site).toEqual({ file: loaded.file, ...positionOf(VALID, "role(") });
    expect(loaded.spec.site).toEqual({ file: loaded.file, ...positionOf(VALID, "({\n  methods") });
  });

  it("locates options of a loaded spec", () => {
    const dir = writeFiles({ "spec.ts": VALID });
    const loaded = loadSpec(path.join(dir, "spec.ts"));
    const site = loaded.spec.methods[0].site!;

    expect(loaded.locate(site)).toEqual({ file: loaded.file, ...positionOf(VALID, "lora(") });
    expect(loaded.locate(site, ["rank"])).toEqual({ file: loaded.file, ...positionOf(VALID, "rank: 4") });
    expect(loaded.locate(site, ["dropout"])).toEqual({ file: loaded.file, ...positionOf(VALID, "dropout") });
    // A path the literal does not write stops at the call's name.
    expect(loaded.locate(site, ["rsLora"])).toEqual({ file: loaded.file, ...positionOf(VALID, "lora(") });
    expect(loaded.locate(loaded.spec.site!, ["methods", "0"])).toEqual({ file: loaded.file, ...positionOf(VALID, "lora(") });
    expect(loaded.locate(loaded.spec.site!, ["train", "optimizer"])).toEqual({ file: loaded.file, ...positionOf(VALID, "optimizer") });
    expect(loaded.locate({ file: "/elsewhere/spec.ts", line: 1, column: 1 })).toBeUndefined();
  });

  it("relocates a later error to a pattern key", () => {
    const source = loraSpec(`rank: 8, rankPattern: { "layers.0.*": 16, 'layers.1.*': 32 }`);
    const dir = writeFiles({ "spec.ts": source });
    const loaded = loadSpec(path.join(dir, "spec.ts"));
    const site = loaded.spec.methods[0].site;

    const error = loaded.relocate(new SpecError("E_SPEC_OPTION", "rank 32 is above the layer's width 16.", site, ["rankPattern", "layers.1.*"]));
    expect(error.site).toEqual({ file: loaded.file, ...positionOf(source, "'layers.1.*'") });
    expect(error.message).toBe(`${loaded.file}:${error.site!.line}:${error.site!.column}: rank 32 is above the layer's width 16.`);
    expect(error.details.line).toBe(error.site!.line);

    const rankError = loaded.relocate(new SpecError("E_SPEC_OPTION", "rank too large", site, ["rank"]));
    expect(rankError.site).toEqual({ file: loaded.file, ...positionOf(source, "rank: 8") });
  });

  it("keeps an error without a site unchanged", () => {
    const dir = writeFiles({ "spec.ts": VALID });
    const loaded = loadSpec(path.join(dir, "spec.ts"));
    const error = loaded.relocate(new SpecError("E_SPEC_OPTION", "no site", undefined, ["rank"]));
    expect(error.site).toBeUndefined();
    expect(error.message).toBe("no site");
  });

  it("rejects a missing file with E_SPEC_LOAD", () => {
    const dir = writeFiles({});
    const file = path.join(dir, "missing.ts");
    const error = thrown(() => loadSpec(file));
    expect(error).toBeInstanceOf(PeftcError);
    expect((error as PeftcError).code).toBe("E_SPEC_LOAD");
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toContain("does not exist");
  });

  it("rejects a missing declaration file with E_SPEC_LOAD", () => {
    const dir = writeFiles({ "spec.ts": VALID });
    const typesFile = path.join(dir, "model.d.ts");
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"), { typesFiles: [typesFile] }));
    expect(error).toBeInstanceOf(PeftcError);
    expect((error as PeftcError).code).toBe("E_SPEC_LOAD");
    expect((error as Error).message).toContain(typesFile);
  });

  it("reports a type error at its position", () => {
    const source = `import { defineSpec, lora, select } from "peftc";

const rank: number = "eight";

export default defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank })] });
`;
    const dir = writeFiles({ "spec.ts": source });
    const file = path.join(dir, "spec.ts");
    const error = thrown(() => loadSpec(file));

    expect(error).toBeInstanceOf(SpecTypeError);
    const typeError = error as SpecTypeError;
    expect(typeError.code).toBe("E_SPEC_TYPE");
    expect(typeError.diagnostics).toHaveLength(1);
    const { line, column } = positionOf(source, "rank: number");
    expect(typeError.diagnostics[0]).toMatchObject({ file, line, column });
    expect(typeError.message).toContain(`${file}:${line}:${column}: Type 'string' is not assignable to type 'number'.`);
  });

  it("lists every type error", () => {
    const source = `import { defineSpec, select } from "peftc";

const a: number = "one";
const b: string = 2;

export default defineSpec({ methods: [], seed: select });
`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecTypeError;

    expect(error.code).toBe("E_SPEC_TYPE");
    expect(error.diagnostics.map((diagnostic) => diagnostic.line)).toEqual([3, 4, 6]);
    expect(error.message).toContain("3 errors; fix them");
  });

  it("reports an unknown option as a type error at the property", () => {
    const source = loraSpec("rnak: 4");
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecTypeError;

    expect(error.code).toBe("E_SPEC_TYPE");
    expect(error.diagnostics).toHaveLength(1);
    expect(error.diagnostics[0]).toMatchObject(positionOf(source, "rnak"));
    expect(error.diagnostics[0].message).toContain("'rnak' does not exist");
  });

  it("reports a type error in an imported helper", () => {
    const dir = writeFiles({
      "helper.ts": `export const rank: number = "four";\n`,
      "spec.ts": `import { defineSpec, lora, select } from "peftc";\nimport { rank } from "./helper";\n\nexport default defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank })] });\n`,
    });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecTypeError;
    expect(error.code).toBe("E_SPEC_TYPE");
    expect(error.diagnostics).toEqual([expect.objectContaining({ file: path.join(dir, "helper.ts"), line: 1, column: 14 })]);
  });

  it("skips type-checking when asked", () => {
    const source = loraSpec("rnak: 4");
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"), { typeCheck: false })) as SpecError;

    // The run-time check still rejects the option, at the property.
    expect(error.code).toBe("E_SPEC_OPTION");
    expect(error.site).toEqual({ file: path.join(dir, "spec.ts"), ...positionOf(source, "rnak") });
  });

  it.each([
    ["rank", "rank: 0"],
    ["dropout", "dropout: 1.5"],
    ["alpha", "alpha: -1"],
    ["init", `init: "zeros" as "kaiming"`],
  ])("places a bad %s value at the property", (option, text) => {
    const source = loraSpec(text);
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts")));

    expect(error).toBeInstanceOf(SpecError);
    const specError = error as SpecError;
    expect(specError.code).toBe("E_SPEC_OPTION");
    expect(specError.option).toEqual([option]);
    const { line, column } = positionOf(source, text);
    expect(specError.site).toEqual({ file: path.join(dir, "spec.ts"), line, column });
    expect(specError.message.startsWith(`${path.join(dir, "spec.ts")}:${line}:${column}: lora: option "${option}"`)).toBe(true);
  });

  it("places a bad pattern value at its key", () => {
    const source = loraSpec(`rankPattern: { "layers.0.*": 16, "layers.1.*": 0 }`);
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecError;

    expect(error.code).toBe("E_SPEC_OPTION");
    expect(error.site).toEqual({ file: path.join(dir, "spec.ts"), ...positionOf(source, `"layers.1.*"`) });
  });

  it("places a bad nested option of defineSpec", () => {
    const source = `import { defineSpec, lora, select } from "peftc";

export default defineSpec({
  methods: [lora({ targets: select.role("attn.q") })],
  train: {
    clipGradNorm: -1,
  },
});
`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecError;

    expect(error.code).toBe("E_SPEC_OPTION");
    expect(error.option).toEqual(["train", "clipGradNorm"]);
    expect(error.site).toEqual({ file: path.join(dir, "spec.ts"), ...positionOf(source, "clipGradNorm") });
  });

  it("keeps the call site when options come from a variable", () => {
    const source = `import { defineSpec, lora, select } from "peftc";

const options = { targets: select.role("attn.q"), rank: 0 };

export default defineSpec({ methods: [lora(options)] });
`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecError;

    expect(error.code).toBe("E_SPEC_OPTION");
    expect(error.site).toEqual({ file: path.join(dir, "spec.ts"), ...positionOf(source, "lora(") });
  });

  it("places a selector error at the selector call", () => {
    const source = loraSpec("rank: 4").replace(`select.role("attn.q")`, "select.layers(3, 1)");
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecError;

    expect(error.code).toBe("E_SPEC_OPTION");
    expect(error.reason).toContain("select.layers(3, 1)");
    expect(error.site).toEqual({ file: path.join(dir, "spec.ts"), ...positionOf(source, "layers(3, 1)") });
  });

  it("accepts a regular expression selector", () => {
    const source = loraSpec("rank: 4").replace(`select.role("attn.q")`, String.raw`select.regex(/layers\.\d+\.attn\.q$/)`);
    const dir = writeFiles({ "spec.ts": source });
    const loaded = loadSpec(path.join(dir, "spec.ts"));
    expect((loaded.spec.methods[0] as LoraMethod).targets.term).toEqual({ kind: "regex", source: String.raw`layers\.\d+\.attn\.q$`, flags: "" });
  });

  it("reports a throwing spec with E_SPEC_EVAL at the throw", () => {
    const source = `import { defineSpec, lora, select } from "peftc";

function rankFor(layers: number): number {
  if (layers > 1) throw new Error("no rank for " + layers + " layers");
  return 8;
}

export default defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank: rankFor(2) })] });
`;
    const dir = writeFiles({ "spec.ts": source });
    const file = path.join(dir, "spec.ts");
    const error = thrown(() => loadSpec(file)) as SpecError;

    expect(error.code).toBe("E_SPEC_EVAL");
    // An Error's stack starts where it was constructed, which here is the throw statement's line.
    expect(error.site).toEqual({ file, ...positionOf(source, "new Error") });
    expect(error.message).toBe(`${file}:4:25: running the spec failed: no rank for 2 layers`);
  });

  it("reports a thrown non-error value with E_SPEC_EVAL", () => {
    const source = `import { defineSpec } from "peftc";\n\nthrow "not ready";\n\nexport default defineSpec({ methods: [] });\n`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecError;

    expect(error.code).toBe("E_SPEC_EVAL");
    expect(error.message).toContain("not ready");
  });

  it("reports a spec without a default export with E_SPEC_EVAL", () => {
    const source = `import { defineSpec, lora, select } from "peftc";\n\nexport const spec = defineSpec({ methods: [lora({ targets: select.role("attn.q") })] });\n`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts")));

    expect(error).toBeInstanceOf(PeftcError);
    expect((error as PeftcError).code).toBe("E_SPEC_EVAL");
    expect((error as Error).message).toContain("default export is not a spec");
  });

  it("reports a default export that is no spec with E_SPEC_EVAL", () => {
    const source = `import { lora, select } from "peftc";\n\nexport default { methods: [lora({ targets: select.role("attn.q") })] };\n`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts")));
    expect(error).toBeInstanceOf(PeftcError);
    expect((error as PeftcError).code).toBe("E_SPEC_EVAL");
  });

  it("reports a Promise default export", () => {
    const source = `import { defineSpec, lora, select } from "peftc";\n\nexport default (async () => defineSpec({ methods: [lora({ targets: select.role("attn.q") })] }))();\n`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as PeftcError;

    expect(error.code).toBe("E_SPEC_EVAL");
    expect(error.message).toContain("the default export is a Promise");
    expect(error.message).toContain("not from an async function");
  });

  it("stops a spec that runs too long", () => {
    const source = `import { defineSpec, lora, select } from "peftc";\n\nwhile (true) {}\n\nexport default defineSpec({ methods: [lora({ targets: select.role("attn.q") })] });\n`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"), { typeCheck: false, timeoutMs: 300 })) as PeftcError;

    expect(error.code).toBe("E_SPEC_EVAL");
    expect(error.message).toContain(`${path.join(dir, "spec.ts")}: running the spec timed out after 0.3 s`);
  });

  it("stops an imported helper that runs too long", () => {
    const dir = writeFiles({
      "spec.ts": `import { defineSpec } from "peftc";\nimport { methods } from "./helper";\n\nexport default defineSpec({ methods });\n`,
      "helper.ts": `import { lora, select } from "peftc";\n\nfor (;;) {}\n\nexport const methods = [lora({ targets: select.role("attn.q") })];\n`,
    });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"), { typeCheck: false, timeoutMs: 300 })) as PeftcError;

    expect(error.code).toBe("E_SPEC_EVAL");
    expect(error.message).toContain("timed out");
  });

  it("counts a syntax error as one error", () => {
    const source = `import { defineSpec, lora, select } from "peftc";\n\nexport default defineSpec({ methods: [lora({ targets: select.role("attn.q") })] }));\n`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecTypeError;

    expect(error.code).toBe("E_SPEC_TYPE");
    expect(error.diagnostics).toHaveLength(1);
    expect(error.message).toContain("the spec has 1 error; fix it and compile again:");
  });

  it.each([
    ["method", `methods: [lora({ targets: select.role("attn.q") }), { method: "lora" } as any]`, ["methods", "1"], "must be made by lora(...)", `{ method: "lora" }`],
    ["spread method", `methods: [{ ...lora({ targets: select.role("attn.q") }) }]`, ["methods", "0"], "must be made by lora(...)", `{ ...lora`],
    ["loss", `methods: [lora({ targets: select.role("attn.q") })], train: { loss: { loss: "causal_lm" } as any }`, ["train", "loss"], "must be made by causalLM()", `loss: {`],
    ["optimizer", `methods: [lora({ targets: select.role("attn.q") })], train: { optimizer: { optimizer: "sgd", lr: 1 } as any }`, ["train", "optimizer"], "must be made by adamw(...) or sgd(...)", `optimizer: {`],
  ])("rejects a hand-built %s at its property", (_what, options, option, reason, marker) => {
    const source = `import { defineSpec, lora, select } from "peftc";\n\nexport default defineSpec({\n  ${options},\n});\n`;
    const dir = writeFiles({ "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecError;

    expect(error.code).toBe("E_SPEC_OPTION");
    expect(error.option).toEqual(option);
    expect(error.message).toContain(reason);
    expect(error.site).toEqual({ file: path.join(dir, "spec.ts"), ...positionOf(source, marker) });
  });

  it.each([
    ["alpha: NaN", `option "alpha" must be a finite number (a number > 0); got NaN.`],
    ["alpha: Infinity", `option "alpha" must be a finite number (a number > 0); got Infinity.`],
    ["dropout: 1", `option "dropout" must be a number in [0, 1); got 1.`],
  ])("describes %s in its message", (text, expected) => {
    const dir = writeFiles({ "spec.ts": loraSpec(text) });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecError;

    expect(error.code).toBe("E_SPEC_OPTION");
    expect(error.message).toContain(expected);
  });

  it("loads relative TypeScript imports", () => {
    const helper = `import { lora, select } from "peftc";

export const RANK = 16;

export function attentionLora(rank: number) {
  return lora({ targets: select.role("attn.q", "attn.v"), rank });
}
`;
    const shared = `export const SEED = 7;\n`;
    const source = `import { defineSpec } from "peftc";
import { RANK, attentionLora } from "./helper";
import { SEED } from "./lib/shared.ts";

export default defineSpec({ methods: [attentionLora(RANK)], seed: SEED });
`;
    const dir = writeFiles({ "helper.ts": helper, "spec.ts": source });
    fs.mkdirSync(path.join(dir, "lib"));
    fs.writeFileSync(path.join(dir, "lib", "shared.ts"), shared);
    const loaded = loadSpec(path.join(dir, "spec.ts"));

    expect((loaded.spec.methods[0] as LoraMethod).rank).toBe(16);
    expect(loaded.spec.seed).toBe(7);
    // The site of a call in the helper points into the helper's source.
    expect(loaded.spec.methods[0].site).toEqual({ file: path.join(dir, "helper.ts"), ...positionOf(helper, "({ targets") });
    expect(loaded.locate(loaded.spec.methods[0].site!, ["rank"])).toEqual({ file: path.join(dir, "helper.ts"), ...positionOf(helper, "rank })") });
  });

  it("places an error raised in a helper inside the helper", () => {
    const helper = `import { lora, select } from "peftc";\n\nexport const method = lora({ targets: select.role("attn.q"), dropout: 2 });\n`;
    const source = `import { defineSpec } from "peftc";\nimport { method } from "./helper.js";\n\nexport default defineSpec({ methods: [method] });\n`;
    const dir = writeFiles({ "helper.ts": helper, "spec.ts": source });
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"))) as SpecError;

    expect(error.code).toBe("E_SPEC_OPTION");
    expect(error.site).toEqual({ file: path.join(dir, "helper.ts"), ...positionOf(helper, "dropout") });
  });

  it("evaluates each imported file once", () => {
    const counter = `export const calls: number[] = [];\ncalls.push(1);\n`;
    const helper = `import { calls } from "./counter";\nexport const fromHelper = calls;\n`;
    const source = `import { defineSpec, lora, select } from "peftc";
import { calls } from "./counter";
import { fromHelper } from "./helper";

export default defineSpec({ methods: [lora({ targets: select.role("attn.q"), rank: calls.length + fromHelper.length })] });
`;
    const dir = writeFiles({ "counter.ts": counter, "helper.ts": helper, "spec.ts": source });
    expect((loadSpec(path.join(dir, "spec.ts")).spec.methods[0] as LoraMethod).rank).toBe(2);
  });

  it("sees changes to a spec loaded before", () => {
    const dir = writeFiles({ "spec.ts": loraSpec("rank: 4") });
    expect((loadSpec(path.join(dir, "spec.ts")).spec.methods[0] as LoraMethod).rank).toBe(4);
    fs.writeFileSync(path.join(dir, "spec.ts"), loraSpec("rank: 12"));
    expect((loadSpec(path.join(dir, "spec.ts")).spec.methods[0] as LoraMethod).rank).toBe(12);
  });
});

describe("loadSpec with model declarations", () => {
  it("accepts roles and layers llama-tiny has", () => {
    const source = loraSpec("rank: 4").replace(`select.role("attn.q")`, `select.role("attn.q", "mlp.gate").and(select.layers(0, 1), select.module("layers.1.attn.v"))`);
    const dir = writeFiles({ "spec.ts": source });
    const typesFile = writeModelTypes(dir, "llama-tiny.onnx");
    expect(loadSpec(path.join(dir, "spec.ts"), { typesFiles: [typesFile] }).spec.methods).toHaveLength(1);
  });

  it("rejects a role llama-tiny lacks", () => {
    const source = loraSpec("rank: 4").replace(`select.role("attn.q")`, `select.role("attn.qkv")`);
    const dir = writeFiles({ "spec.ts": source });
    const typesFile = writeModelTypes(dir, "llama-tiny.onnx");
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"), { typesFiles: [typesFile] })) as SpecTypeError;

    expect(error.code).toBe("E_SPEC_TYPE");
    expect(error.diagnostics).toHaveLength(1);
    expect(error.diagnostics[0]).toMatchObject(positionOf(source, `"attn.qkv"`));
    expect(error.diagnostics[0].message).toContain(`"attn.qkv"`);
  });

  it("rejects a layer llama-tiny lacks", () => {
    const source = loraSpec("rank: 4").replace(`select.role("attn.q")`, "select.layers(7)");
    const dir = writeFiles({ "spec.ts": source });
    const typesFile = writeModelTypes(dir, "llama-tiny.onnx");
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"), { typesFiles: [typesFile] })) as SpecTypeError;

    expect(error.code).toBe("E_SPEC_TYPE");
    expect(error.diagnostics).toHaveLength(1);
    expect(error.diagnostics[0]).toMatchObject(positionOf(source, "7)"));
  });

  it("rejects a module path llama-tiny lacks", () => {
    const source = loraSpec("rank: 4").replace(`select.role("attn.q")`, `select.module("layers.2.attn.q")`);
    const dir = writeFiles({ "spec.ts": source });
    const typesFile = writeModelTypes(dir, "llama-tiny.onnx");
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"), { typesFiles: [typesFile] })) as SpecTypeError;
    expect(error.code).toBe("E_SPEC_TYPE");
  });

  it("accepts the parts of GPT-2's fused projection", () => {
    const source = loraSpec("rank: 4").replace(`select.role("attn.q")`, `select.role("attn.q", "attn.v").or(select.module("layers.0.attn.k"))`);
    const dir = writeFiles({ "spec.ts": source });
    const typesFile = writeModelTypes(dir, "gpt2-tiny-op17.onnx");
    expect(loadSpec(path.join(dir, "spec.ts"), { typesFiles: [typesFile] }).spec.methods).toHaveLength(1);
  });

  it("rejects a role GPT-2 lacks", () => {
    const source = loraSpec("rank: 4").replace(`select.role("attn.q")`, `select.role("mlp.gate")`);
    const dir = writeFiles({ "spec.ts": source });
    const typesFile = writeModelTypes(dir, "gpt2-tiny-op17.onnx");
    const error = thrown(() => loadSpec(path.join(dir, "spec.ts"), { typesFiles: [typesFile] })) as SpecTypeError;
    expect(error.code).toBe("E_SPEC_TYPE");
  });
});
