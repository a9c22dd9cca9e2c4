import * as fs from "node:fs";
import * as path from "node:path";
import { ModuleDeclarationKind, Project, StructureKind, type TypeAliasDeclarationStructure } from "ts-morph";
import { PeftcError } from "../errors";
import type { DiscoveryJson } from "./json";

/**
 * Builds TypeScript declarations of a model's module paths, roles and layer
 * indices as string and number literal unions, so that a PEFT spec written
 * in TypeScript fails to type-check when it selects a module the model does
 * not have. The file also augments the "peftc" module's ModelModules
 * interface, which narrows the spec DSL's selectors when the file is part
 * of the spec's program. Selectors also accept the paths and roles of the
 * parts of a fused QKV projection (`layers.0.attn.q` of GPT-2's `c_attn`),
 * read from `discovery.attention`. `modelFile` is named in the header
 * comment. An empty union is declared as `never`.
 */
export function moduleTypeDeclarations(discovery: Pick<DiscoveryJson, "modules" | "attention">, modelFile: string): string {
  const modules = discovery.modules.filter((module) => module.role !== null);
  const paths = modules.map((module) => module.path);
  const roles = [...new Set(modules.map((module) => module.role!))].sort();
  const parts = fusedQkvParts(discovery);
  const selectablePaths = [...paths, ...parts.map((part) => part.path).filter((partPath) => !paths.includes(partPath))];
  const selectableRoles = [...new Set([...roles, ...parts.map((part) => part.role)])].sort();
  const layers = [...new Set(modules.flatMap((module) => (module.layer === null ? [] : [module.layer])))].sort((a, b) => a - b);

  // A line break in the file name would end the comment early.
  const shownFile = modelFile.replace(/[\r\n\u2028\u2029]/g, " ");
  const header = [
    `// Module types of ${path.basename(shownFile)}, written by \`peftc inspect --emit-types\`.`,
    `// Model file: ${shownFile}`,
    "// Regenerate this file instead of editing it when the model changes.",
    "",
    "",
  ].join("\n");
  const project = new Project({ useInMemoryFileSystem: true });
  const file = project.createSourceFile("modules.d.ts", header);

  // One member a line keeps a union of hundreds of paths readable and diffable.
  const union = (members: string[]): string => (members.length === 0 ? "never" : members.map((member) => `\n  | ${member}`).join(""));
  const alias = (name: string, type: string, doc: string): TypeAliasDeclarationStructure => ({
    kind: StructureKind.TypeAlias,
    name,
    type,
    isExported: true,
    docs: [doc],
  });
  file.addTypeAliases([
    alias("ModulePath", union(paths.map(literal)), "Canonical path of every module discovered in the model, in graph order."),
    alias("ModuleRole", union(roles.map(literal)), "Role of at least one module of the model."),
    alias("LayerIndex", union(layers.map(String)), "Index of every transformer layer that holds a module."),
  ]);
  file.addInterface({
    name: "ModuleRoles",
    isExported: true,
    docs: ["Role of each module, by path."],
    properties: modules.map((module) => ({ name: literal(module.path), type: literal(module.role!), isReadonly: true })),
  });
  file.addTypeAlias(
    alias("ModulePathWithRole<R extends ModuleRole>", "{ [P in ModulePath]: ModuleRoles[P] extends R ? P : never }[ModulePath]", "Paths of the modules whose role is `R`."),
  );
  file.addTypeAliases([
    alias("SelectablePath", union(selectablePaths.map(literal)), "Path a selector can name: every module path and the path of each part of a fused QKV projection."),
    alias("SelectableRole", union(selectableRoles.map(literal)), "Role a selector can name: every module role and the role of each part of a fused QKV projection."),
  ]);
  // Augments the DSL's ModelModules interface, so `select.role`, `select.module`
  // and `select.layers` accept only this model's roles, paths and layers.
  file.addModule({
    name: '"peftc"',
    hasDeclareKeyword: true,
    declarationKind: ModuleDeclarationKind.Module,
    docs: ["Narrows the selectors of the peftc spec DSL to this model's modules."],
    statements: [
      {
        kind: StructureKind.Interface,
        name: "ModelModules",
        properties: [
          { name: "path", type: "SelectablePath" },
          { name: "role", type: "SelectableRole" },
          { name: "layer", type: "LayerIndex" },
        ],
      },
    ],
  });
  file.formatText({ indentSize: 2 });
  return file.getFullText();
}

/**
 * Lists the parts of each fused QKV projection whose row layout discovery
 * read, with the path and role the part would have as a separate
 * projection, as the spec DSL's selection targets name them.
 */
function fusedQkvParts(discovery: Pick<DiscoveryJson, "modules" | "attention">): { path: string; role: string }[] {
  const parts: { path: string; role: string }[] = [];
  for (const block of discovery.attention ?? []) {
    const layout = block.qkvLayout;
    if (!layout || layout.layout === "ambiguous" || !layout.order || !layout.widths) continue;
    for (const fusedPath of new Set(block.q)) {
      const fused = discovery.modules.find((module) => module.path === fusedPath && module.role === "attn.qkv");
      if (!fused) continue;
      const stem = fused.path.endsWith(".qkv") ? fused.path.slice(0, -".qkv".length) : fused.path;
      for (const part of layout.order) parts.push({ path: `${stem}.${part}`, role: `attn.${part}` });
    }
  }
  return parts;
}

/** Quotes `text` as a string literal, because JSON string syntax is valid TypeScript. */
function literal(text: string): string {
  return JSON.stringify(text);
}

/**
 * Checks that declarations can go to `target`, so that a caller can reject a
 * bad path before the slow work. Raises E_OUTPUT_PATH when `target` does not
 * end in `.d.ts`, its folder does not exist or it is a folder.
 */
export function checkModuleTypesPath(target: string): void {
  if (!target.endsWith(".d.ts")) {
    throw new PeftcError("E_OUTPUT_PATH", `cannot write module types to "${target}": the file name must end in .d.ts (for example model-modules.d.ts).`);
  }
  const folder = path.dirname(path.resolve(target));
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) {
    throw new PeftcError("E_OUTPUT_PATH", `cannot write module types to "${target}": folder ${folder} does not exist. Create it or pick another path.`);
  }
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) {
    throw new PeftcError("E_OUTPUT_PATH", `cannot write module types to "${target}": it is a folder. Pass a file path ending in .d.ts.`);
  }
}

/**
 * Writes the declarations to `target` atomically (a temporary file in the
 * same folder, then a rename), so a failed write leaves no file behind.
 * Raises E_OUTPUT_PATH as `checkModuleTypesPath` does, or when the write fails.
 */
export function writeModuleTypes(target: string, discovery: Pick<DiscoveryJson, "modules">, modelFile: string): void {
  checkModuleTypesPath(target);
  const folder = path.dirname(path.resolve(target));
  const text = moduleTypeDeclarations(discovery, modelFile);
  const temp = path.join(folder, `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}`);
  try {
    fs.writeFileSync(temp, text);
    fs.renameSync(temp, target);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw new PeftcError("E_OUTPUT_PATH", `cannot write module types to "${target}": ${(error as Error).message}`);
  }
}
