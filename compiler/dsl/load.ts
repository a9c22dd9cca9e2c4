import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError, isPeftcError } from "../errors";
import { locateOption } from "./locate";
import type { SourceSite } from "./site";
import { SpecModules } from "./spec-module";
import { type Spec, isSpec, notASpec } from "./spec";
import { SpecError, isSpecError } from "./spec-error";
import { createSpecProject, typeCheckSpec } from "./type-check";

export interface LoadSpecOptions {
  /**
   * Declarations the spec is type-checked with, such as the model's
   * `model.d.ts` from `peftc inspect --emit-types`, which narrows roles,
   * paths and layers to the model's own.
   */
  typesFiles?: readonly string[];
  /** Type-checks the spec before running it. Default true. */
  typeCheck?: boolean;
  /** Limit on running the spec and the files it imports, in milliseconds. Default 30,000 (30 s). */
  timeoutMs?: number;
}

/** A spec file's default export, with what is needed to point later errors into its source. */
export interface LoadedSpec {
  spec: Spec;
  /** Absolute path of the spec file. */
  file: string;
  /** The spec's TypeScript source as it was loaded. */
  source: string;
  /**
   * Returns the source position of `option` in the DSL call captured at
   * `site`: the property name the path reaches, or the callee's name when
   * the path is empty or not written as literals. Undefined when `site` is
   * in no TypeScript file of the spec or at no call.
   */
  locate(site: SourceSite, option?: readonly string[]): SourceSite | undefined;
  /** Moves `error` to the exact option it names (see `locate`) and returns it; an error it cannot place keeps its site. */
  relocate<E extends SpecError>(error: E): E;
}

/**
 * Loads a spec file: checks that it is readable, type-checks it together
 * with `typesFiles`, runs it, and checks that its default export was made
 * by `defineSpec`.
 *
 * Raises E_SPEC_LOAD when the file cannot be read, E_SPEC_TYPE (a
 * SpecTypeError listing every error) when it fails to type-check, and
 * E_SPEC_EVAL when running it throws, takes longer than `timeoutMs`, or its
 * default export is no spec. A SpecError from a DSL call is rethrown moved
 * to the option at fault.
 */
export function loadSpec(file: string, options: LoadSpecOptions = {}): LoadedSpec {
  const specFile = path.resolve(file);
  const source = readSpecFile(specFile);
  const typesFiles = (options.typesFiles ?? []).map((typesFile) => path.resolve(typesFile));
  for (const typesFile of typesFiles) readSpecFile(typesFile, "declaration file");

  const project = createSpecProject();
  if (options.typeCheck ?? true) typeCheckSpec(project, specFile, typesFiles);

  const modules = new SpecModules(peftcPackage(), options.timeoutMs);
  const locate = (site: SourceSite, option: readonly string[] = []): SourceSite | undefined => {
    const sourceFile = modules.files.includes(site.file) ? (project.getSourceFile(site.file) ?? project.addSourceFileAtPathIfExists(site.file)) : undefined;
    return sourceFile ? locateOption(sourceFile, site, option) : undefined;
  };
  const relocate = <E extends SpecError>(error: E): E => {
    const site = error.site && locate(error.site, error.option);
    if (site) error.relocate(site);
    return error;
  };

  let exports: unknown;
  try {
    exports = modules.load(specFile);
  } catch (error) {
    throw evaluationError(error, specFile, modules, relocate);
  } finally {
    modules.dispose();
  }

  const spec = (exports as { default?: unknown }).default;
  if (!isSpec(spec)) notASpec(specFile, spec);
  return { spec, file: specFile, source, locate, relocate };
}

/** Returns the package module that spec files get for "peftc": the caller's own instance, so `instanceof` checks agree. */
function peftcPackage(): unknown {
  // Required here rather than imported, because the package entry imports this file.
  return require("../index");
}

function readSpecFile(file: string, what: "spec file" | "declaration file" = "spec file"): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read: ${(error as Error).message}`;
    const fix = what === "spec file" ? "create the file with `export default defineSpec({ methods: [...] })`" : "write it with `peftc inspect MODEL --emit-types FILE`";
    throw new PeftcError("E_SPEC_LOAD", `${what} ${file} ${reason}. Check the path, or ${fix}.`, { file });
  }
}

/**
 * Turns an exception from running the spec into the error to raise: a
 * SpecError moved to its option, another peftc error as it is, and
 * anything else an E_SPEC_EVAL at the spec line that threw.
 */
function evaluationError(error: unknown, specFile: string, modules: SpecModules, relocate: (error: SpecError) => SpecError): Error {
  if (isSpecError(error)) return relocate(error);
  if (isPeftcError(error)) return error;
  const message = typeof (error as { message?: unknown } | null)?.message === "string" ? (error as Error).message : String(error);
  const site = modules.throwSite(error);
  const reason = `running the spec failed: ${message}`;
  const result = site ? new SpecError("E_SPEC_EVAL", reason, site) : new SpecError("E_SPEC_EVAL", `${specFile}: ${reason}`, undefined);
  // The original exception keeps its stack for debugging.
  result.cause = error;
  return result;
}
