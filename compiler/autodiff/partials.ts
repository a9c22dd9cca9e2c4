import type { Value } from "../ir/value";
import type { GradBuilder } from "./grad-builder";

/**
 * Partial gradients of forward values, summed on first read. A value read
 * by several nodes gets one partial from each, and its gradient is their
 * sum (one Add for two partials, one Sum for more).
 */
export class GradientPartials {
  private readonly partials = new Map<Value, Value[]>();

  constructor(private readonly b: GradBuilder) {}

  add(value: Value, grad: Value): void {
    const list = this.partials.get(value) ?? [];
    list.push(this.b.typed(grad, value));
    this.partials.set(value, list);
  }

  /** Returns the summed gradient of `value`, or undefined when nothing reached it. */
  total(value: Value): Value | undefined {
    const list = this.partials.get(value);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) this.partials.set(value, [this.b.typed(this.b.op(list.length === 2 ? "Add" : "Sum", list), value)]);
    return this.partials.get(value)![0];
  }
}
