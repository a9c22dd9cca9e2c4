/**
 * Compiles a module path glob to a regular expression over the whole path.
 * `*` matches within one segment (segments end at any of `separators`), `**`
 * across segments, `?` one character of a segment, and `{a,b}` either
 * alternative. Everything else is literal.
 */
export function globToRegExp(glob: string, separators = "."): RegExp {
  const segment = `[^${escapeClass(separators)}]`;
  let source = "";
  let depth = 0;
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (char === "*") {
      source += `${segment}*`;
    } else if (char === "?") {
      source += segment;
    } else if (char === "{") {
      source += "(?:";
      depth++;
    } else if (char === "}" && depth > 0) {
      source += ")";
      depth--;
    } else if (char === "," && depth > 0) {
      source += "|";
    } else {
      source += char.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
  }
  // An unclosed brace is closed here, so "{a,b" still compiles to a valid alternation.
  source += ")".repeat(depth);
  return new RegExp(`^(?:${source})$`);
}

function escapeClass(chars: string): string {
  return chars.replace(/[\]\\^-]/g, "\\$&");
}

/** True when the text has glob syntax, so it is a pattern rather than one literal path. */
export function isGlob(text: string): boolean {
  return /[*?{]/.test(text);
}
