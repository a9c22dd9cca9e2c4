import { types } from "node:util";
import type { Role } from "../match/module";
import { type SourceSite, captureSite } from "./site";
import { SpecError } from "./spec-error";

/**
 * Module types of the model a spec is compiled against. Empty here, so any
 * role, path or layer type-checks; the `model.d.ts` that `peftc compile`
 * and `peftc inspect --emit-types` write augments it with the model's own
 * unions (`declare module "peftc" { interface ModelModules { ... } }`), and
 * then the TypeScript compiler rejects a role, path or layer the model lacks.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ModelModules {}

/** A role the model has: any role unless the model's declarations narrow it. */
export type KnownRole = ModelModules extends { role: infer R } ? R : Role;
/** A canonical module path of the model: any string unless the model's declarations narrow it. */
export type KnownPath = ModelModules extends { path: infer P } ? P : string;
/** A layer index of the model: any number unless the model's declarations narrow it. */
export type KnownLayer = ModelModules extends { layer: infer L } ? L : number;

/** The criterion a selector tests, as data so a spec hashes and prints the same way every time. */
export type SelectorTerm =
  | { kind: "path"; patterns: string[] }
  | { kind: "module"; paths: string[] }
  | { kind: "regex"; source: string; flags: string }
  | { kind: "role"; roles: string[] }
  | { kind: "layers"; layers: number[] }
  | { kind: "allLinear" }
  | { kind: "name"; patterns: string[] }
  | { kind: "and"; items: Selector[] }
  | { kind: "or"; items: Selector[] }
  | { kind: "except"; base: Selector; excluded: Selector };

/**
 * A set of modules, described by path globs, regular expressions, roles,
 * layers or original names, and combined with `and`, `or` and `except`.
 * A selector is only a description: it is matched against a model's
 * discovered modules when the spec is compiled.
 */
export class Selector {
  /** @internal */
  constructor(
    readonly term: SelectorTerm,
    /** Spec position of the call that made this selector, for errors about its matches. */
    readonly site: SourceSite | undefined,
    /** Property path of a selector written as a plain glob, list or regular expression in a method's options (`["targets"]`); empty for select.* calls. */
    readonly option: readonly string[] = [],
  ) {}

  /** Modules this selector and every one of `others` select. */
  and(...others: SelectorLike[]): Selector {
    return new Selector({ kind: "and", items: [this, ...others.map((other) => toSelector(other, captureSite()))] }, captureSite());
  }

  /** Modules this selector or any of `others` selects. */
  or(...others: SelectorLike[]): Selector {
    return new Selector({ kind: "or", items: [this, ...others.map((other) => toSelector(other, captureSite()))] }, captureSite());
  }

  /** Modules this selector selects and `excluded` does not. */
  except(excluded: SelectorLike): Selector {
    return new Selector({ kind: "except", base: this, excluded: toSelector(excluded, captureSite()) }, captureSite());
  }

  /** True when the selector itself restricts layers (a layer list, or a pattern naming a layer number), so missing layers are intended. */
  get restrictsLayers(): boolean {
    const term = this.term;
    switch (term.kind) {
      case "layers":
        return true;
      case "path":
      case "name":
        return term.patterns.some((pattern) => /\d/.test(pattern));
      case "module":
        return true;
      case "regex":
        return /\d/.test(term.source);
      case "and":
      case "or":
        return term.items.some((item) => item.restrictsLayers);
      case "except":
        return term.base.restrictsLayers || term.excluded.restrictsLayers;
      default:
        return false;
    }
  }

  /** Formats the selector as a spec would write it, for messages. */
  toString(): string {
    const term = this.term;
    const quoted = (items: readonly (string | number)[]): string => items.map((item) => JSON.stringify(item)).join(", ");
    switch (term.kind) {
      case "path":
        return `select.path(${quoted(term.patterns)})`;
      case "module":
        return `select.module(${quoted(term.paths)})`;
      case "regex":
        return `select.regex(/${term.source}/${term.flags})`;
      case "role":
        return `select.role(${quoted(term.roles)})`;
      case "layers":
        return `select.layers([${term.layers.join(", ")}])`;
      case "allLinear":
        return "select.allLinear()";
      case "name":
        return `select.name(${quoted(term.patterns)})`;
      case "and":
      case "or":
        return `select.${term.kind}(${term.items.map(String).join(", ")})`;
      case "except":
        return `${term.base}.except(${term.excluded})`;
    }
  }

  /** Plain data for the spec hash and the manifest. */
  toJSON(): unknown {
    const term = this.term;
    switch (term.kind) {
      case "and":
      case "or":
        return { kind: term.kind, items: term.items.map((item) => item.toJSON()) };
      case "except":
        return { kind: "except", base: term.base.toJSON(), excluded: term.excluded.toJSON() };
      default:
        return term;
    }
  }
}

/**
 * What a spec may pass where a selector is expected: a selector, a path glob,
 * a list of path globs (any of them), or a regular expression over paths.
 */
export type SelectorLike = Selector | string | readonly string[] | RegExp;

/** Turns a selector-like value into a selector; `site` is used for the plain forms, which carry no site of their own. */
export function toSelector(value: SelectorLike, site: SourceSite | undefined, option: readonly string[] = []): Selector {
  if (value instanceof Selector) return value;
  if (typeof value === "string") return new Selector({ kind: "path", patterns: [checkPattern(value, site, option)] }, site, option);
  // A realm-independent test, because a spec may run in another realm than the DSL (a Jest test's context).
  if (types.isRegExp(value)) return regexSelector(value, site, option);
  if (Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === "string")) {
    return new Selector({ kind: "path", patterns: value.map((item) => checkPattern(item, site, option)) }, site, option);
  }
  throw new SpecError(
    "E_SPEC_OPTION",
    `${describeOption(option, "selector")} must be a selector (select.role(...), select.path(...), ...), a path glob string, a non-empty list of path globs, or a regular expression; got ${describeValue(value)}.`,
    site,
    option,
  );
}

function checkPattern(pattern: string, site: SourceSite | undefined, option: readonly string[]): string {
  if (pattern.trim() === "") throw new SpecError("E_SPEC_OPTION", `${describeOption(option, "path pattern")} is empty; write a module path or glob such as "layers.*.attn.q".`, site, option);
  return pattern;
}

function regexSelector(regex: RegExp, site: SourceSite | undefined, option: readonly string[] = []): Selector {
  if (regex.flags.includes("g") || regex.flags.includes("y")) {
    throw new SpecError("E_SPEC_OPTION", `${describeOption(option, "regular expression")} /${regex.source}/${regex.flags} has the "g" or "y" flag, which makes matching depend on earlier matches; remove the flag.`, site, option);
  }
  return new Selector({ kind: "regex", source: regex.source, flags: regex.flags }, site, option);
}

function describeOption(option: readonly string[], fallback: string): string {
  return option.length > 0 ? `option "${option.join(".")}"` : fallback;
}

/** Describes a bad value in a message: its JSON, or its type where it has none. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  // JSON writes null for these, which hides the mistake.
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (types.isPromise(value)) return "a Promise";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function requireStrings(what: string, items: readonly unknown[], site: SourceSite | undefined): string[] {
  if (items.length === 0) throw new SpecError("E_SPEC_OPTION", `${what} needs at least one argument.`, site);
  for (const item of items) {
    if (typeof item !== "string" || item.trim() === "") throw new SpecError("E_SPEC_OPTION", `${what} takes non-empty strings; got ${describeValue(item)}.`, site);
  }
  return items as string[];
}

function requireLayer(what: string, value: unknown, site: SourceSite | undefined): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new SpecError("E_SPEC_OPTION", `${what} takes layer indices, which are integers from 0; got ${describeValue(value)}.`, site);
  }
  return value;
}

/** Selectors over a model's discovered modules. */
export const select = {
  /**
   * Modules whose canonical path matches any of the globs, such as
   * `"layers.*.attn.q"` or `"layers.{0,1}.mlp.*"`. `*` matches within one
   * path segment, `**` across segments, `?` one character, `{a,b}` either.
   * Every other character is literal: `[qk]` is not a character class and
   * matches the text "[qk]" itself, so write `{q,k}`. Each glob must match
   * at least one module the method takes, or compiling the spec fails.
   */
  path(...patterns: string[]): Selector {
    const site = captureSite();
    return new Selector({ kind: "path", patterns: requireStrings("select.path", patterns, site) }, site);
  },

  /** Modules with exactly these canonical paths; with the model's declarations loaded, a path it lacks is a type error. */
  module(...paths: KnownPath[]): Selector {
    const site = captureSite();
    return new Selector({ kind: "module", paths: requireStrings("select.module", paths, site) }, site);
  },

  /** Modules whose canonical path matches the regular expression, anchored at the start of the path. */
  regex(pattern: RegExp): Selector {
    const site = captureSite();
    if (!types.isRegExp(pattern)) throw new SpecError("E_SPEC_OPTION", `select.regex takes a regular expression literal such as /layers\\.\\d+\\.attn\\.(q|v)$/; got ${describeValue(pattern)}.`, site);
    return regexSelector(pattern, site);
  },

  /**
   * Modules with any of these roles (`attn.q`, `mlp.down`, ...). A role of
   * a part of a fused projection (`attn.q` on GPT-2's `c_attn`) selects
   * that part, so the same spec serves fused and separate projections.
   */
  role(...roles: KnownRole[]): Selector {
    const site = captureSite();
    return new Selector({ kind: "role", roles: requireStrings("select.role", roles, site) }, site);
  },

  /**
   * Modules in transformer layers: `layers(first, last)` is the inclusive
   * range, `layers([0, 2, 5])` the listed layers.
   */
  layers(first: KnownLayer | readonly KnownLayer[], last?: KnownLayer): Selector {
    const site = captureSite();
    let layers: number[];
    if (Array.isArray(first)) {
      if (last !== undefined) throw new SpecError("E_SPEC_OPTION", "select.layers takes either a list of layers or a first and last layer, not both.", site);
      if (first.length === 0) throw new SpecError("E_SPEC_OPTION", "select.layers needs at least one layer in its list.", site);
      layers = first.map((layer: unknown) => requireLayer("select.layers", layer, site));
    } else {
      const from = requireLayer("select.layers", first, site);
      const to = last === undefined ? from : requireLayer("select.layers", last, site);
      if (to < from) throw new SpecError("E_SPEC_OPTION", `select.layers(${from}, ${to}): the last layer comes before the first; both ends are inclusive, so write select.layers(${to}, ${from}).`, site);
      layers = Array.from({ length: to - from + 1 }, (_, i) => from + i);
    }
    return new Selector({ kind: "layers", layers: [...new Set(layers)].sort((a, b) => a - b) }, site);
  },

  /** Selects every linear layer except the output head, as PEFT's `target_modules="all-linear"`. */
  allLinear(): Selector {
    return new Selector({ kind: "allLinear" }, captureSite());
  },

  /**
   * Modules by the name the exporter gave them: their initializer or node
   * name (`model.layers.0.self_attn.q_proj.weight`,
   * `/model/layers.0/self_attn/q_proj/MatMul`), or the PyTorch module name
   * read from it (`model.layers.0.self_attn.q_proj`) or any dot-separated
   * suffix of that name (`q_proj`, `self_attn.q_proj`), as PEFT's
   * `target_modules` matches. Globs as in `path`, where `*` also stops at `/`.
   */
  name(...patterns: string[]): Selector {
    const site = captureSite();
    return new Selector({ kind: "name", patterns: requireStrings("select.name", patterns, site) }, site);
  },

  /** Modules every selector selects. */
  and(...selectors: SelectorLike[]): Selector {
    const site = captureSite();
    if (selectors.length === 0) throw new SpecError("E_SPEC_OPTION", "select.and needs at least one selector.", site);
    return new Selector({ kind: "and", items: selectors.map((item) => toSelector(item, site)) }, site);
  },

  /** Modules any selector selects. */
  or(...selectors: SelectorLike[]): Selector {
    const site = captureSite();
    if (selectors.length === 0) throw new SpecError("E_SPEC_OPTION", "select.or needs at least one selector.", site);
    return new Selector({ kind: "or", items: selectors.map((item) => toSelector(item, site)) }, site);
  },

  /** Modules `base` selects and `excluded` does not. */
  except(base: SelectorLike, excluded: SelectorLike): Selector {
    const site = captureSite();
    return new Selector({ kind: "except", base: toSelector(base, site), excluded: toSelector(excluded, site) }, site);
  },
};
