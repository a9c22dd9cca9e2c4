import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import * as vm from "node:vm";
import { TraceMap, originalPositionFor } from "@jridgewell/trace-mapping";
import { ts } from "ts-morph";
import { type SourceMapper, type SourceSite, registerSourceMapper, unregisterSourceMapper } from "./site";
import { SpecError } from "./spec-error";

/**
 * Node's CommonJS module wrapper, kept on the first line so that lines of
 * the transpiled code keep their numbers; only columns of line 1 shift.
 */
const WRAPPER_HEAD = "(function (exports, require, module, __filename, __dirname) { ";
const WRAPPER_TAIL = "\n})";

/**
 * Default limit on running a spec and the files it imports, in
 * milliseconds. A spec only describes methods, so it finishes in well under
 * a second; the limit is there to turn an endless loop into an error.
 */
export const DEFAULT_SPEC_TIMEOUT_MS = 30_000;

/** Extensions tried, in order, for a relative import without one, as TypeScript's bundler resolution does. */
const TS_EXTENSIONS = [".ts", ".mts", ".cts"];

interface LoadedModule {
  exports: unknown;
}

/**
 * Loads a spec and the local TypeScript files it imports: each file is
 * transpiled to CommonJS and run in the current realm, "peftc" resolves to
 * the package instance given here, and everything else goes to Node's
 * `require`. Each transpiled file gets a source mapper, so sites captured
 * by DSL calls point into the TypeScript source. `dispose` removes the
 * mappers once loading is over.
 */
export class SpecModules {
  private readonly modules = new Map<string, LoadedModule>();
  private readonly mappers = new Map<string, SourceMapper>();
  /** True while a file runs under the time limit, so the files it imports run within the same limit. */
  private running = false;

  constructor(
    private readonly peftc: unknown,
    /** Limit on running the first file loaded, imports included, in milliseconds. */
    private readonly timeoutMs = DEFAULT_SPEC_TIMEOUT_MS,
  ) {}

  /** Absolute paths of the files transpiled so far, the spec first. */
  get files(): string[] {
    return [...this.mappers.keys()];
  }

  /** Loads `file` (absolute) and returns its exports; a file already loaded is not run again. */
  load(file: string): unknown {
    const cached = this.modules.get(file);
    if (cached) return cached.exports;

    const source = fs.readFileSync(file, "utf8");
    const output = ts.transpileModule(source, {
      fileName: file,
      reportDiagnostics: false,
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2022,
        esModuleInterop: true,
        sourceMap: true,
      },
    });
    // The map stays here rather than in a sourceMappingURL comment, so no
    // other tool maps the positions a second time.
    const code = output.outputText.replace(/\/\/# sourceMappingURL=\S*\s*$/, "");
    const mapper = sourceMapper(new TraceMap(output.sourceMapText!));
    this.mappers.set(file, mapper);
    registerSourceMapper(file, mapper);

    const module: LoadedModule = { exports: {} };
    // Cached before it runs, so an import cycle gets the partly filled exports, as in Node.
    this.modules.set(file, module);
    // NOTE: runInThisContext is the caller's realm in a plain Node process.
    // Under Jest, whose tests run in their own context, the spec runs in the
    // outer realm, so checks on spec values must not rely on `instanceof`
    // with built-in classes such as RegExp.
    const script = new vm.Script(WRAPPER_HEAD + code + WRAPPER_TAIL, { filename: file });
    const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
    const run = (): void => wrapper.call(module.exports, module.exports, this.requireFrom(file), module, file, path.dirname(file));
    if (this.running) run();
    else this.runWithTimeout(file, run);
    return module.exports;
  }

  /**
   * Runs `run` under the time limit. vm's `timeout` covers only code that a
   * script runs, so a one-line script calls `run` through a temporary global
   * of the realm that scripts run in (not this module's realm under Jest).
   */
  private runWithTimeout(file: string, run: () => void): void {
    const key = Symbol.for("peftc.runSpec");
    const global = vm.runInThisContext("globalThis") as Record<symbol, unknown>;
    global[key] = run;
    this.running = true;
    try {
      new vm.Script(`globalThis[Symbol.for("peftc.runSpec")]()`).runInThisContext({ timeout: this.timeoutMs });
    } catch (error) {
      if ((error as NodeJS.ErrnoException | null)?.code === "ERR_SCRIPT_EXECUTION_TIMEOUT") {
        throw new SpecError(
          "E_SPEC_EVAL",
          `${file}: running the spec timed out after ${this.timeoutMs / 1000} s. A spec only describes methods and should finish at once, so look for an endless loop in it or in the files it imports.`,
          undefined,
        );
      }
      throw error;
    } finally {
      this.running = false;
      delete global[key];
    }
  }

  /** Removes the source mappers; sites captured while loading keep their TypeScript positions. */
  dispose(): void {
    for (const file of this.mappers.keys()) unregisterSourceMapper(file);
  }

  /**
   * Returns the innermost frame of `error`'s stack in a transpiled file,
   * mapped to the TypeScript source: where spec code threw, or where it
   * called the code that threw.
   */
  throwSite(error: unknown): SourceSite | undefined {
    const stack = typeof (error as { stack?: unknown } | null)?.stack === "string" ? (error as { stack: string }).stack : "";
    let best: { index: number; site: SourceSite } | undefined;
    for (const [file, mapper] of this.mappers) {
      const frame = new RegExp(`(?<=[\\s(@])${escapeRegExp(file)}:(\\d+):(\\d+)`).exec(stack);
      if (!frame || (best && best.index < frame.index)) continue;
      const line = Number(frame[1]);
      const column = Number(frame[2]);
      const mapped = mapper(line, column);
      best = { index: frame.index, site: { file, line: mapped?.line ?? line, column: mapped?.column ?? column } };
    }
    return best?.site;
  }

  private requireFrom(file: string): (request: string) => unknown {
    const nodeRequire = createRequire(file);
    return (request: string) => {
      if (request === "peftc") return this.peftc;
      const local = resolveLocalTypeScript(request, path.dirname(file));
      return local ? this.load(local) : nodeRequire(request);
    };
  }
}

/**
 * Maps 1-based positions in the wrapped, transpiled code to 1-based
 * positions in the TypeScript source. V8 reports 1-based columns and
 * trace-mapping takes and returns 0-based ones.
 */
function sourceMapper(map: TraceMap): SourceMapper {
  return (line, column) => {
    const generatedColumn = line === 1 ? column - WRAPPER_HEAD.length : column;
    const original = originalPositionFor(map, { line, column: Math.max(generatedColumn - 1, 0) });
    if (original.line === null) return undefined;
    return { line: original.line, column: original.column + 1 };
  };
}

/**
 * Resolves a relative or absolute import to a TypeScript file: the path
 * itself when it names one, else the path with a TypeScript extension, a
 * `.js` import's `.ts` twin, or the folder's index.ts. Undefined sends the
 * import to Node's `require`.
 */
function resolveLocalTypeScript(request: string, fromDir: string): string | undefined {
  if (!request.startsWith("./") && !request.startsWith("../") && !path.isAbsolute(request) && request !== "." && request !== "..") return undefined;
  const target = path.resolve(fromDir, request);
  const candidates: string[] = [];
  if (TS_EXTENSIONS.includes(path.extname(target))) candidates.push(target);
  const jsTwin = /\.(m|c)?js$/.exec(target);
  if (jsTwin) candidates.push(target.slice(0, -jsTwin[0].length) + `.${jsTwin[1] ?? ""}ts`);
  candidates.push(...TS_EXTENSIONS.map((extension) => target + extension));
  candidates.push(...TS_EXTENSIONS.map((extension) => path.join(target, `index${extension}`)));
  return candidates.find((candidate) => !candidate.endsWith(".d.ts") && isFile(candidate));
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
