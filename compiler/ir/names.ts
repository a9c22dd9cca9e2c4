/**
 * Hands out names that are unique across a model and its subgraphs. Names
 * depend only on the order of requests, so the same rewrite of the same
 * graph always produces the same names.
 */
export class NameAllocator {
  private readonly used = new Set<string>();
  private readonly nextSuffix = new Map<string, number>();

  /** Marks an existing name as taken. */
  reserve(name: string): void {
    if (name) this.used.add(name);
  }

  has(name: string): boolean {
    return this.used.has(name);
  }

  /** Returns the name `fresh(base)` would return, without taking it. */
  peek(base: string): string {
    const stem = base || "v";
    if (!this.used.has(stem)) return stem;
    let suffix = this.nextSuffix.get(stem) ?? 1;
    while (this.used.has(`${stem}_${suffix}`)) suffix += 1;
    return `${stem}_${suffix}`;
  }

  /** Returns `base` if free, otherwise `base_1`, `base_2`, … */
  fresh(base: string): string {
    const stem = base || "v";
    if (!this.used.has(stem)) {
      this.used.add(stem);
      return stem;
    }
    let suffix = this.nextSuffix.get(stem) ?? 1;
    while (this.used.has(`${stem}_${suffix}`)) suffix += 1;
    this.nextSuffix.set(stem, suffix + 1);
    const name = `${stem}_${suffix}`;
    this.used.add(name);
    return name;
  }
}
