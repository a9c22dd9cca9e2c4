import { unbroadcast } from "../broadcast";
import type { GradientRule } from "../rule";

/** Where(condition, X, Y): X gets dy where the condition holds, Y elsewhere, each summed over its broadcast axes; the bool condition gets none. */
export const where: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0]!;
  const [condition, x, y] = node.inputs;
  const dims = b.dims(node.outputs[0]);
  const zero = b.scalar(0, b.dtype(dy));
  return [
    undefined,
    context.needsGrad(1) ? unbroadcast(b, b.op("Where", [condition, dy, zero]), x!, dims) : undefined,
    context.needsGrad(2) ? unbroadcast(b, b.op("Where", [condition, zero, dy]), y!, dims) : undefined,
  ];
};
