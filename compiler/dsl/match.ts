import { distance } from "fastest-levenshtein";
import { globToRegExp } from "./glob";
import type { Selector, SelectorTerm } from "./selector";
import { type SourceSite, formatSite } from "./site";
import { SpecError } from "./spec-error";
import type { Target } from "./targets";

/** A finding about a spec that does not stop compilation, with the spec line it concerns. */
export interface SpecWarning {
  message: string;
  site: SourceSite | undefined;
}

/** Formats a warning as compilers do: `file:line:col: warning: message`. */
export function formatWarning(warning: SpecWarning): string {
  return warning.site ? `${formatSite(warning.site)}: warning: ${warning.message}` : `warning: ${warning.message}`;
}

/** Returns the targets `selector` selects, in target order, without resolving fused parts against their whole module. */
export function matchSelector(selector: Selector, targets: readonly Target[]): Target[] {
  const selected = evaluate(selector.term, targets);
  return targets.filter((target) => selected.has(target));
}

function evaluate(term: SelectorTerm, targets: readonly Target[]): Set<Target> {
  const keep = (test: (target: Target) => boolean): Set<Target> => new Set(targets.filter(test));
  switch (term.kind) {
    case "path": {
      const patterns = term.patterns.map((pattern) => globToRegExp(pattern));
      return keep((target) => patterns.some((pattern) => pattern.test(target.path)));
    }
    case "module":
      return keep((target) => term.paths.includes(target.path));
    case "regex": {
      const pattern = new RegExp(`^(?:${term.source})`, term.flags);
      return keep((target) => pattern.test(target.path));
    }
    case "role":
      return keep((target) => target.role !== null && term.roles.includes(target.role));
    case "layers":
      return keep((target) => target.layer !== null && term.layers.includes(target.layer));
    case "allLinear":
      return keep((target) => target.kind === "linear" && target.role !== "head" && target.part === undefined);
    case "name": {
      const patterns = term.patterns.map((pattern) => globToRegExp(pattern, "./"));
      // A part shares its fused module's names, so a name selects the module
      // and its parts. collapseParts keeps the whole module unless another
      // selector narrows the match to parts (`select.role("attn.q").and(name)`).
      return keep((target) => {
        const names = [target.originalName, ...dotSuffixes(target.torchName)];
        return patterns.some((pattern) => names.some((name) => pattern.test(name)));
      });
    }
    case "and": {
      const [first, ...rest] = term.items.map((item) => evaluate(item.term, targets));
      return new Set([...first].filter((target) => rest.every((set) => set.has(target))));
    }
    case "or":
      return new Set(term.items.flatMap((item) => [...evaluate(item.term, targets)]));
    case "except": {
      const excluded = evaluate(term.excluded.term, targets);
      // Excluding a fused module excludes its parts too.
      return new Set([...evaluate(term.base.term, targets)].filter((target) => !excluded.has(target) && !isPartOfExcluded(target, excluded)));
    }
  }
}

/** Returns `a.b.c`, `b.c` and `c`: PEFT's target_modules matches a module by any such suffix. */
function dotSuffixes(name: string): string[] {
  const segments = name.split(".");
  return segments.map((_, i) => segments.slice(i).join("."));
}

function isPartOfExcluded(target: Target, excluded: Set<Target>): boolean {
  return target.part !== undefined && [...excluded].some((other) => other.part === undefined && other.module === target.module);
}

/**
 * Drops a fused part when its whole module is selected too, because LoRA on
 * the whole projection already covers the part.
 */
export function collapseParts(selected: readonly Target[]): Target[] {
  const wholes = new Set(selected.filter((target) => target.part === undefined).map((target) => target.module));
  return selected.filter((target) => target.part === undefined || !wholes.has(target.module));
}

export interface Selection {
  targets: Target[];
  warnings: SpecWarning[];
}

/**
 * Matches `selector` for a method option and checks the result. An empty
 * match is an error that lists the closest module paths. So is a single
 * pattern, role, name, module path or layer of the selector that matches
 * no module on its own, because a typo in one part of a larger selector
 * would otherwise vanish silently. A match that covers a role in
 * some layers but not in others is a warning naming the layers missed,
 * unless the selector itself restricts layers. `kinds` keeps only modules a
 * method can take, and `what` names the option in messages.
 */
export function resolveSelection(selector: Selector, targets: readonly Target[], what: string, kinds?: readonly Target["kind"][]): Selection {
  const candidates = kinds ? targets.filter((target) => kinds.includes(target.kind)) : targets;
  const matched = collapseParts(matchSelector(selector, candidates));
  if (matched.length === 0) {
    const reason = unmatchedReason(`${selector}`, selector.term, targets, what, kinds);
    throw new SpecError("E_SPEC_SELECTOR", `${what}: ${reason}. ${suggestions(selector.term, candidates, targets)}`, selector.site, selector.option);
  }
  checkEveryPartMatches(selector, targets, candidates, what, kinds);
  return { targets: matched, warnings: missedLayers(selector, matched, candidates, what) };
}

function unmatchedReason(described: string, term: SelectorTerm, targets: readonly Target[], what: string, kinds: readonly Target["kind"][] | undefined): string {
  const everything = kinds ? [...evaluate(term, targets)] : [];
  if (everything.length > 0) return `${described} matches only ${describeKinds(everything)}, and ${what} takes ${kinds!.join(" or ")} modules`;
  return `${described} matches no module of the model`;
}

/** One pattern, role, name, module path or layer of a selector, as a selector term of its own. */
interface SelectorPart {
  /** The selector written with this part. */
  selector: Selector;
  term: SelectorTerm;
  /** The part as written (`"layers.*.attn.vv"`, `role "attn.vv"`, `layer 7`). */
  label: string;
  /** Property path of the part in the method's options, for a plain string or list of strings. */
  option: readonly string[];
}

/** Rejects the first part of `selector` that matches no candidate on its own. */
function checkEveryPartMatches(selector: Selector, targets: readonly Target[], candidates: readonly Target[], what: string, kinds: readonly Target["kind"][] | undefined): void {
  for (const part of selectorParts(selector)) {
    if (evaluate(part.term, candidates).size > 0) continue;
    const reason = unmatchedReason(`${part.label} in ${part.selector}`, part.term, targets, what, kinds);
    const hint = part.term.kind === "path" && /[[\]]/.test(part.term.patterns[0])
      ? " Square brackets are literal characters in peftc globs, not character classes; write {q,k} for either."
      : "";
    throw new SpecError("E_SPEC_SELECTOR", `${what}: ${reason}.${hint} ${suggestions(part.term, candidates, targets)}`, part.selector.site, part.option);
  }
}

/** Splits a selector into its single-criterion parts, excluded selectors included, in the order written. */
function selectorParts(selector: Selector): SelectorPart[] {
  const term = selector.term;
  const part = (single: SelectorTerm, label: string, index: number): SelectorPart => ({
    selector,
    term: single,
    label,
    // A list of globs written in the options points at its element; locating stops at the option itself for a single string.
    option: selector.option.length > 0 ? [...selector.option, String(index)] : [],
  });
  switch (term.kind) {
    case "path":
    case "name":
      return term.patterns.map((pattern, i) => part({ kind: term.kind, patterns: [pattern] }, JSON.stringify(pattern), i));
    case "module":
      return term.paths.map((modulePath, i) => part({ kind: "module", paths: [modulePath] }, JSON.stringify(modulePath), i));
    case "role":
      return term.roles.map((role, i) => part({ kind: "role", roles: [role] }, `role ${JSON.stringify(role)}`, i));
    case "layers":
      return term.layers.map((layer, i) => part({ kind: "layers", layers: [layer] }, `layer ${layer}`, i));
    case "regex":
    case "allLinear":
      return [part(term, `${selector}`, 0)];
    case "and":
    case "or":
      return term.items.flatMap(selectorParts);
    case "except":
      return [...selectorParts(term.base), ...selectorParts(term.excluded)];
  }
}

function describeKinds(targets: readonly Target[]): string {
  const kinds = [...new Set(targets.map((target) => target.kind))];
  return `${kinds.join(" and ")} modules (${targets.slice(0, 3).map((target) => target.path).join(", ")}${targets.length > 3 ? ", ..." : ""})`;
}

/**
 * Closest module paths to what `term` was written with, the roles the
 * model has and, when `term` names layers, the model's layers, for a part
 * that matches nothing.
 */
function suggestions(term: SelectorTerm, candidates: readonly Target[], targets: readonly Target[]): string {
  const queries = leafStrings(term);
  if (targets.length === 0) {
    return "Module discovery found no modules in this model, so no selector can match. Run `peftc inspect MODEL` to see what it found.";
  }
  const paths = [...new Set(candidates.map((target) => target.path))];
  if (paths.length === 0) return "The model has no modules of that kind. Run `peftc inspect MODEL` to list every module.";
  const scored = paths.map((path) => ({ path, score: Math.min(...queries.map((query) => distance(normalizeQuery(query), path))) }));
  scored.sort((a, b) => a.score - b.score || a.path.localeCompare(b.path));
  const closest = scored.slice(0, 5).map((item) => item.path);
  const roles = [...new Set(candidates.flatMap((target) => (target.role ? [target.role] : [])))].sort();
  const parts = [`Closest module paths: ${closest.join(", ")}.`];
  if (roles.length > 0) parts.push(`Roles in this model: ${roles.join(", ")}.`);
  if (namesLayers(term)) parts.push(describeLayers(targets));
  parts.push("Run `peftc inspect MODEL` to list every module.");
  return parts.join(" ");
}

/** Returns whether `term` or a selector inside it selects by layer number. */
function namesLayers(term: SelectorTerm): boolean {
  switch (term.kind) {
    case "layers":
      return true;
    case "and":
    case "or":
      return term.items.some((item) => namesLayers(item.term));
    case "except":
      return namesLayers(term.base.term) || namesLayers(term.excluded.term);
    default:
      return false;
  }
}

/** Describes the model's transformer layers as a range (`0..1`), or as a list when numbers are missing in between. */
function describeLayers(targets: readonly Target[]): string {
  const layers = [...new Set(targets.flatMap((target) => (target.layer === null ? [] : [target.layer])))].sort((a, b) => a - b);
  if (layers.length === 0) return "The model has no modules in numbered layers.";
  const first = layers[0];
  const last = layers[layers.length - 1];
  const contiguous = last - first + 1 === layers.length;
  return contiguous ? `The model's layers are ${first}..${last}.` : `The model's layers are ${layers.join(", ")}.`;
}

/** The literal strings a selector was written with, for distance ranking. */
function leafStrings(term: SelectorTerm): string[] {
  switch (term.kind) {
    case "path":
    case "name":
      return term.patterns;
    case "module":
      return term.paths;
    case "regex":
      return [term.source];
    case "role":
      return term.roles.map((role) => `layers.0.${role}`);
    case "layers":
      return term.layers.map((layer) => `layers.${layer}`);
    case "allLinear":
      return ["layers.0.attn.q"];
    case "and":
    case "or":
      return term.items.flatMap((item) => leafStrings(item.term));
    case "except":
      return leafStrings(term.base.term);
  }
}

/** Strips glob and regex syntax so a pattern compares with paths by its letters. */
function normalizeQuery(query: string): string {
  return query.replace(/\\\./g, ".").replace(/\*\*|\*|\?/g, "0").replace(/[\\^$()[\]{}+|]/g, "");
}

function missedLayers(selector: Selector, matched: readonly Target[], candidates: readonly Target[], what: string): SpecWarning[] {
  if (selector.restrictsLayers) return [];
  const warnings: SpecWarning[] = [];
  const roles = [...new Set(matched.flatMap((target) => (target.role && target.layer !== null ? [target.role] : [])))];
  for (const role of roles) {
    const got = new Set(matched.filter((target) => target.role === role && target.layer !== null).map((target) => target.layer!));
    const layers = new Set(candidates.flatMap((target) => (target.layer === null ? [] : [target.layer])));
    const missed = [...layers].filter((layer) => !got.has(layer)).sort((a, b) => a - b);
    if (missed.length === 0) continue;
    warnings.push({
      message: `${what}: ${selector} selects ${role} in layers ${[...got].sort((a, b) => a - b).join(", ")} but not in layers ${missed.join(", ")}, where no module has that role. Check those layers with \`peftc inspect MODEL\`, or restrict the selector with select.layers(...) to make the choice explicit.`,
      site: selector.site,
    });
  }
  return warnings;
}
