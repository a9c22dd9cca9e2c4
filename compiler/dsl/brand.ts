/**
 * Objects made by the DSL's own functions (`lora()`, `adamw()`,
 * `causalLM()`, ...). defineSpec accepts only these, because a hand-built
 * object with the right `method` or `loss` field lacks the checked,
 * defaulted fields the compiler reads.
 */
const made = new WeakSet<object>();

/** Records `value` as made by a DSL function and returns it. */
export function brand<T extends object>(value: T): T {
  made.add(value);
  return value;
}

/** True when a DSL function made `value`. */
export function isBranded(value: unknown): boolean {
  return typeof value === "object" && value !== null && made.has(value);
}
