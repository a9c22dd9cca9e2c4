import { PeftcError } from "../../errors";
import { AttributeType, attr } from "../../ir/attribute";
import type { Value } from "../../ir/value";
import type { GradientRule } from "../rule";

/** Returns the first element of a constant (an initializer or a Constant node's tensor) as a number, or undefined when the value is not constant. */
function constantScalar(value: Value): number | undefined {
  let tensor = value.isConstant ? value.initializer : undefined;
  const producer = value.producer;
  if (!tensor && producer?.opType === "Constant") {
    const attribute = producer.attributes.get("value");
    if (attribute?.type === AttributeType.TENSOR) tensor = attribute.value;
  }
  if (!tensor) return undefined;
  const data = tensor.data() as ArrayLike<number | bigint>;
  return data.length > 0 ? Number(data[0]) : undefined;
}

/**
 * Dropout (opset 12+: inputs data, ratio, training_mode; outputs output,
 * mask). Without training_mode, or with a constant false one, it is the
 * identity. In training mode output = data · mask / (1 - ratio), so
 * dx = dy · mask / (1 - ratio), read from the forward mask output because
 * the mask is random and cannot be recomputed. A training_mode computed at
 * run time selects between the two forms at run time.
 */
export const dropout: GradientRule = (context) => {
  const { b, node } = context;
  const dy = context.outputGrads[0];
  if (!dy || !context.needsGrad(0)) return [];
  const [, ratio, trainingMode] = node.inputs;
  const hasTrainingMode = trainingMode !== undefined && !trainingMode.isOmitted;
  const constantMode = hasTrainingMode ? constantScalar(trainingMode) : 0;
  if (constantMode === 0) return [dy];

  const mask = node.outputs[1];
  if (!mask || mask.isOmitted) {
    throw new PeftcError(
      "E_ONNX_INVALID",
      `Dropout node "${node.name}" runs in training mode but does not output its mask, which the gradient needs because the dropped positions are random. Give the node a second output (the bool mask) before building the backward pass.`,
      { node: node.name },
    );
  }
  const dtype = b.dtype(dy);
  const one = b.scalar(1, dtype);
  let keep: Value;
  if (ratio === undefined || ratio.isOmitted) keep = b.scalar(0.5, dtype);
  else {
    const ratioValue = b.dtype(ratio) === dtype ? ratio : b.op("Cast", [ratio], [attr.int("to", dtype)]);
    keep = b.op("Sub", [one, ratioValue]);
  }
  // The mask is all true outside training mode, so only the scale needs a run-time test.
  let scale = b.op("Div", [one, keep]);
  if (constantMode === undefined) scale = b.op("Where", [trainingMode!, scale, one]);
  const masked = b.op("Mul", [dy, b.op("Cast", [mask], [attr.int("to", dtype)])]);
  return [b.op("Mul", [masked, scale])];
};
