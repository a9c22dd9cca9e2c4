import * as path from "node:path";
import { Project, ts } from "ts-morph";
import { PeftcError } from "../errors";

/**
 * The module `import ... from "peftc"` resolves to when a spec is
 * type-checked, without extension: compiler/index.ts when peftc runs from
 * source, dist/compiler/index.d.ts when it runs built. Resolving it from
 * this file's folder makes a spec in any folder see this peftc's types.
 */
export const PACKAGE_ENTRY = path.join(__dirname, "..", "index");

/** Folder of the package's own sources or declarations, whose diagnostics are never the spec author's. */
const PACKAGE_DIR = path.join(__dirname, "..") + path.sep;

/** One type error in a spec, at a 1-based line and column. */
export interface SpecDiagnostic {
  file: string;
  line: number;
  column: number;
  message: string;
}

/** A spec that fails to type-check; `diagnostics` lists every error found. */
export class SpecTypeError extends PeftcError {
  constructor(
    file: string,
    readonly diagnostics: readonly SpecDiagnostic[],
  ) {
    // The list contains syntax errors as well as type errors.
    const count = diagnostics.length === 1 ? "1 error; fix it" : `${diagnostics.length} errors; fix them`;
    const lines = diagnostics.map(formatDiagnostic).join("\n");
    const first = diagnostics[0];
    super("E_SPEC_TYPE", `${file}: the spec has ${count} and compile again:\n${lines}`, {
      file: first?.file ?? file,
      line: first?.line,
      column: first?.column,
    });
    this.name = "SpecTypeError";
  }
}

/** Formats a diagnostic as `file:line:col: message`, indenting the continuation lines of a chained message. */
export function formatDiagnostic(diagnostic: SpecDiagnostic): string {
  return `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}: ${diagnostic.message.replace(/\n/g, "\n    ")}`;
}

/**
 * Creates the project that type-checks specs: strict ES2022 without Node's
 * or any other global types, with "peftc" mapped to this package's entry.
 */
export function createSpecProject(): Project {
  return new Project({
    skipAddingFilesFromTsConfig: true,
    compilerOptions: {
      strict: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ["lib.es2022.d.ts"],
      types: [],
      skipLibCheck: true,
      noEmit: true,
      // The loader resolves "./helper.ts" as well as "./helper", so the types may too.
      allowImportingTsExtensions: true,
      esModuleInterop: true,
      paths: { peftc: [PACKAGE_ENTRY] },
    },
  });
}

/**
 * Type-checks `file` with the model declarations in `typesFiles` and
 * raises a SpecTypeError listing every error in the spec, the local files
 * it imports and the declarations. Errors in the package's own files and
 * in node_modules are not the spec author's to fix, so they are skipped.
 */
export function typeCheckSpec(project: Project, file: string, typesFiles: readonly string[]): void {
  const spec = project.addSourceFileAtPath(file);
  const declarations = typesFiles.map((typesFile) => project.addSourceFileAtPath(typesFile));
  const checkedFiles = new Set<string>([spec, ...declarations].map((sourceFile) => sourceFile.getFilePath()));
  const program = project.getProgram().compilerObject;

  const diagnostics: ts.Diagnostic[] = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  for (const sourceFile of program.getSourceFiles()) {
    if (!isSpecAuthorFile(sourceFile, checkedFiles)) continue;
    diagnostics.push(...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile));
  }
  if (diagnostics.length > 0) throw new SpecTypeError(path.resolve(file), diagnostics.map((diagnostic) => toSpecDiagnostic(diagnostic, file)));
}

/** True for the spec, the model declarations and local files the spec imports, false for the package and node_modules. */
function isSpecAuthorFile(sourceFile: ts.SourceFile, checkedFiles: ReadonlySet<string>): boolean {
  const file = path.resolve(sourceFile.fileName);
  if (checkedFiles.has(sourceFile.fileName)) return true;
  if (sourceFile.isDeclarationFile) return false;
  return !file.startsWith(PACKAGE_DIR) && !file.split(path.sep).includes("node_modules");
}

function toSpecDiagnostic(diagnostic: ts.Diagnostic, specFile: string): SpecDiagnostic {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
  if (!diagnostic.file || diagnostic.start === undefined) return { file: path.resolve(specFile), line: 1, column: 1, message };
  const position = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return { file: path.resolve(diagnostic.file.fileName), line: position.line + 1, column: position.character + 1, message };
}
