import * as fs from "node:fs";
import * as path from "node:path";
import { Project, ts } from "ts-morph";
import { loadModel } from "../../../compiler/ir/io";
import { discoverModules, discoveryToJson } from "../../../compiler/match";
import { moduleTypeDeclarations, writeModuleTypes } from "../../../compiler/match/emit-types";
import { isPeftcError } from "../../../compiler/errors";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { FIXTURES_DIR } from "./golden-models";

afterAll(removeTempDirs);

const LLAMA = path.join(FIXTURES_DIR, "llama-tiny.onnx");

/** Writes the llama-tiny declarations and `snippet` next to each other, and returns the diagnostics of the snippet. */
function checkSnippet(snippet: string): string[] {
  const dir = makeTempDir();
  writeModuleTypes(path.join(dir, "llama-modules.d.ts"), discoveryToJson(discoverModules(loadModel(LLAMA))), LLAMA);
  const specFile = path.join(dir, "spec.ts");
  fs.writeFileSync(specFile, `import type { LayerIndex, ModulePath, ModulePathWithRole, ModuleRole, ModuleRoles } from "./llama-modules";\n${snippet}\n`);
  const project = new Project({ compilerOptions: { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, types: [] } });
  project.addSourceFilesAtPaths([specFile, path.join(dir, "llama-modules.d.ts")]);
  return project.getPreEmitDiagnostics().map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.compilerObject.messageText, "\n"));
}

/** Instantiates every imported type, so a malformed declaration fails even the snippets that do not use it. */
const USE_ALL = "export type Used = [LayerIndex, ModulePath, ModulePathWithRole<ModuleRole>, ModuleRoles];";

describe("module type declarations", () => {
  it("accept a path the model has", () => {
    const diagnostics = checkSnippet(`${USE_ALL}\nexport const target: ModulePath = "layers.1.attn.q";\nexport const role: ModuleRoles["layers.1.attn.q"] = "attn.q";`);
    expect(diagnostics).toEqual([]);
  });

  it("reject a misspelled path by name", () => {
    const diagnostics = checkSnippet(`${USE_ALL}\nexport const target: ModulePath = "layers.3.attn.qq";`);
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]).toContain('"layers.3.attn.qq"');
    expect(diagnostics[0]).toContain("ModulePath");
  });

  it("reject a layer and a role the model lacks", () => {
    const diagnostics = checkSnippet(`${USE_ALL}\nexport const layer: LayerIndex = 2;\nexport const role: ModuleRole = "attn.qkv";`);
    expect(diagnostics).toHaveLength(2);
    expect(diagnostics[0]).toContain("'2'");
    expect(diagnostics[1]).toContain('"attn.qkv"');
  });

  it("select paths by role", () => {
    const valid = checkSnippet(`${USE_ALL}\nexport const targets: ModulePathWithRole<"attn.q" | "attn.v">[] = ["layers.0.attn.q", "layers.1.attn.v"];`);
    expect(valid).toEqual([]);
    const invalid = checkSnippet(`${USE_ALL}\nexport const target: ModulePathWithRole<"attn.q"> = "layers.0.attn.k";`);
    expect(invalid).toHaveLength(1);
    expect(invalid[0]).toContain('"layers.0.attn.k"');
  });

  it("list every path, role and layer of llama-tiny", () => {
    const discovery = discoveryToJson(discoverModules(loadModel(LLAMA)));
    const text = moduleTypeDeclarations(discovery, LLAMA);
    expect(text.split("\n")[0]).toBe("// Module types of llama-tiny.onnx, written by `peftc inspect --emit-types`.");
    expect(text).toContain(`// Model file: ${LLAMA}`);
    for (const module of discovery.modules) {
      expect(text).toContain(`  | "${module.path}"`);
      expect(text).toContain(`readonly "${module.path}": "${module.role}";`);
    }
    expect(text).toMatch(/export type LayerIndex =\s+\| 0\s+\| 1;/);
  });

  it("augment the DSL's ModelModules", () => {
    const text = moduleTypeDeclarations(discoveryToJson(discoverModules(loadModel(LLAMA))), LLAMA);
    expect(text).toContain('declare module "peftc" {\n  interface ModelModules {\n    path: SelectablePath;\n    role: SelectableRole;\n    layer: LayerIndex;\n  }\n}\n');
    // llama-tiny has no fused projection, so selectors name exactly its modules.
    expect(text).toMatch(/export type SelectableRole =\s+\| "attn.k"\s+\| "attn.o"\s+\| "attn.q"\s+\| "attn.v"\s+\| "embed.tokens"/);
  });

  it("let selectors name the parts of a fused projection", () => {
    const gpt2 = path.join(FIXTURES_DIR, "gpt2-tiny-op17.onnx");
    const text = moduleTypeDeclarations(discoveryToJson(discoverModules(loadModel(gpt2))), gpt2);
    const selectablePaths = /export type SelectablePath =([^;]*);/.exec(text)![1];
    const modulePaths = /export type ModulePath =([^;]*);/.exec(text)![1];
    for (const part of ["layers.0.attn.q", "layers.0.attn.k", "layers.1.attn.v"]) {
      expect(selectablePaths).toContain(`| "${part}"`);
      expect(modulePaths).not.toContain(`| "${part}"`);
    }
    expect(/export type SelectableRole =([^;]*);/.exec(text)![1]).toContain('| "attn.q"');
    expect(/export type ModuleRole =([^;]*);/.exec(text)![1]).not.toContain('| "attn.q"');
  });

  it("declare never for a model without modules", () => {
    const text = moduleTypeDeclarations({ modules: [] }, "empty.onnx");
    expect(text).toContain("export type ModulePath = never;");
    expect(text).toContain("export type ModuleRole = never;");
    expect(text).toContain("export type LayerIndex = never;");
    expect(text).toContain("export type SelectablePath = never;");
    expect(text).toContain("export type SelectableRole = never;");
  });

  it("keep a line break in the model name out of the code", () => {
    const text = moduleTypeDeclarations({ modules: [] }, "odd\nname.onnx");
    expect(text).toContain("// Model file: odd name.onnx");
  });
});

describe("writeModuleTypes", () => {
  const discovery = { modules: [] };

  it("replaces an existing file and leaves no temporary file", () => {
    const dir = makeTempDir();
    const target = path.join(dir, "modules.d.ts");
    fs.writeFileSync(target, "old");
    writeModuleTypes(target, discovery, "m.onnx");
    expect(fs.readFileSync(target, "utf8")).toContain("export type ModulePath = never;");
    expect(fs.readdirSync(dir)).toEqual(["modules.d.ts"]);
  });

  it("rejects bad targets without writing", () => {
    const dir = makeTempDir();
    fs.mkdirSync(path.join(dir, "folder.d.ts"));
    const targets = [path.join(dir, "missing", "modules.d.ts"), path.join(dir, "modules.ts"), path.join(dir, "folder.d.ts")];
    for (const target of targets) {
      let caught: unknown;
      try {
        writeModuleTypes(target, discovery, "m.onnx");
      } catch (error) {
        caught = error;
      }
      expect([target, isPeftcError(caught) ? caught.code : caught]).toEqual([target, "E_OUTPUT_PATH"]);
    }
    expect(fs.readdirSync(dir)).toEqual(["folder.d.ts"]);
    expect(fs.readdirSync(path.join(dir, "folder.d.ts"))).toEqual([]);
  });
});
