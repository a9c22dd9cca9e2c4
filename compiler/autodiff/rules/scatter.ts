import { PeftcError } from "../../errors";
import type { Value } from "../../ir/value";
import { zerosOfShape } from "./index-arithmetic";
import type { GradientRule } from "../rule";

/**
 * ScatterND without reduction: the output is `data` with the indexed slices
 * replaced by `updates`. The data gradient is dY with those slices zeroed,
 * and the updates gradient is dY gathered at the indices. With reduction
 * "add" the data gradient is dY unchanged. With repeated
 * indices the last update wins in the forward pass, and this rule then
 * gives every duplicate the gradient, as PyTorch's index_put does.
 */
export const scatterND: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const reduction = node.getString("reduction", "none");
  if (reduction !== "none" && reduction !== "add") {
    throw new PeftcError("E_UNKNOWN_DOMAIN", `ScatterND node "${node.name}": the gradient of reduction "${reduction}" is not implemented; only replacement and "add" are.`, { node: node.name });
  }
  const [, indices, updates] = node.inputs as Value[];
  // With "add", data passes through unchanged, so its gradient is dY itself.
  const replaced = reduction === "none" ? b.op("ScatterND", [dy, indices, zerosOfShape(b, b.shape(updates), b.dtype(node.outputs[0]))]) : dy;
  const ddata = context.needsGrad(0) ? replaced : undefined;
  const dupdates = context.needsGrad(2) ? b.op("GatherND", [dy, indices]) : undefined;
  return [ddata, undefined, dupdates];
};
