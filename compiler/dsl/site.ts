import * as path from "node:path";

/** A position in a spec's source, 1-based line and column as editors show them. */
export interface SourceSite {
  file: string;
  line: number;
  column: number;
}

/** Maps a position in code that was transpiled from a spec back to the spec's TypeScript source. */
export type SourceMapper = (line: number, column: number) => { line: number; column: number } | undefined;

const mappers = new Map<string, SourceMapper>();

/** Registers how positions in `file`'s transpiled code map back to its source, so captured sites point into the source. */
export function registerSourceMapper(file: string, mapper: SourceMapper): void {
  mappers.set(path.resolve(file), mapper);
}

export function unregisterSourceMapper(file: string): void {
  mappers.delete(path.resolve(file));
}

/** Folder of the spec API; frames inside it are the API's own and never the user's call. */
const DSL_DIR = __dirname + path.sep;

/**
 * Returns where the spec called into the DSL: the first stack frame outside
 * this folder, mapped back to TypeScript when the spec was transpiled by the
 * spec loader. Undefined when no frame has a file (a call from a REPL).
 */
export function captureSite(): SourceSite | undefined {
  const previousPrepare = Error.prepareStackTrace;
  const previousLimit = Error.stackTraceLimit;
  let frames: NodeJS.CallSite[] = [];
  try {
    // Structured frames avoid parsing stack text, whose format other tools
    // (jest, source-map-support) may have changed.
    Error.prepareStackTrace = (_error, callSites) => callSites;
    Error.stackTraceLimit = 64;
    const holder: { stack?: unknown } = {};
    Error.captureStackTrace(holder, captureSite);
    frames = (holder.stack as NodeJS.CallSite[] | undefined) ?? [];
  } finally {
    Error.prepareStackTrace = previousPrepare;
    Error.stackTraceLimit = previousLimit;
  }
  for (const frame of frames) {
    const file = frame.getFileName();
    if (!file || file.startsWith("node:") || file.startsWith(DSL_DIR)) continue;
    const line = frame.getLineNumber() ?? 1;
    const column = frame.getColumnNumber() ?? 1;
    const mapped = mappers.get(path.resolve(file))?.(line, column);
    return { file, line: mapped?.line ?? line, column: mapped?.column ?? column };
  }
  return undefined;
}

/** Formats a site as `file:line:col`, the form compilers and editors use. */
export function formatSite(site: SourceSite): string {
  return `${site.file}:${site.line}:${site.column}`;
}
