import { createHash } from "node:crypto";
import { Selector } from "./selector";
import type { Spec } from "./spec";

/**
 * Converts a spec to plain JSON data: selectors as their terms, maps as
 * objects, and no source sites, so moving a spec or reformatting it keeps
 * the data and the hash the same.
 */
export function specToJson(spec: Spec): unknown {
  return toPlain(spec);
}

/** Converts any DSL value (settings, losses, selectors) to plain JSON data the way `specToJson` does. */
export function toPlain(value: unknown): unknown {
  if (value instanceof Selector) return toPlain(value.toJSON());
  if (value instanceof Map) return Object.fromEntries([...value.entries()].map(([key, item]) => [String(key), toPlain(item)]));
  if (Array.isArray(value)) return value.map(toPlain);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).filter(([key, item]) => key !== "site" && item !== undefined);
    return Object.fromEntries(entries.map(([key, item]) => [key, toPlain(item)]));
  }
  return value;
}

/** Serializes JSON data with object keys sorted at every level, so equal data gives equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]));
  }
  return value;
}

/** SHA-256 of the spec's canonical JSON, in hex. */
export function specHash(spec: Spec): string {
  return createHash("sha256").update(canonicalJson(specToJson(spec))).digest("hex");
}
