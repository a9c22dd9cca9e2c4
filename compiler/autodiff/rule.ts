import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import type { GradBuilder } from "./grad-builder";

/** What a gradient rule sees of one forward node. */
export interface GradientContext {
  node: Node;
  /** Emits backward nodes. */
  b: GradBuilder;
  /** Gradient of the loss with respect to each output; undefined for an output the loss does not depend on. */
  outputGrads: readonly (Value | undefined)[];
  /** True when input `index` needs a gradient: it is a float value that depends on a trainable tensor. */
  needsGrad(index: number): boolean;
}

/**
 * The vector-Jacobian product of one op: returns the gradient of the loss
 * with respect to each input, undefined for inputs that need none. A rule
 * may read the node's forward inputs and outputs, which keeps those alive
 * until the backward pass uses them.
 */
export type GradientRule = (context: GradientContext) => (Value | undefined)[];
