import { PeftcError } from "../../errors";
import { attr } from "../../ir/attribute";
import type { Node } from "../../ir/node";
import type { Value } from "../../ir/value";
import { byteSize } from "../../onnx/dtype";
import { unbroadcast } from "../broadcast";
import type { GradBuilder } from "../grad-builder";
import type { GradientContext, GradientRule } from "../rule";

/** Mean over `axes` keeping them as size 1; the axes are an input from opset 18 and an attribute before. */
function meanOver(b: GradBuilder, x: Value, axes: readonly number[]): Value {
  if (b.opset >= 18) return b.op("ReduceMean", [x, b.ints(axes)], [attr.int("keepdims", 1)]);
  return b.op("ReduceMean", [x], [attr.ints("axes", [...axes]), attr.int("keepdims", 1)]);
}

/**
 * Lists the normalized axes, from `axis` to the last. A negative axis gives
 * negative axes, so only a non-negative one needs the input's rank.
 */
function normalizedAxes(b: GradBuilder, node: Node, x: Value, axis: number): number[] {
  if (axis < 0) return Array.from({ length: -axis }, (_, i) => axis + i);
  const rank = b.rank(x);
  if (rank === undefined) {
    throw new PeftcError("E_SHAPE_INFERENCE", `${node.opType} node "${node.name}": the gradient needs the input's rank to read axis ${axis}, but shape inference could not find it.`, { node: node.name });
  }
  return Array.from({ length: rank - axis }, (_, i) => axis + i);
}

/**
 * Returns a forward statistics output cast to `like`'s type, or undefined
 * when the node does not output it or stores it in a narrower type (float
 * statistics of a double input), where recomputing keeps full precision.
 */
function statistic(b: GradBuilder, node: Node, index: number, like: Value): Value | undefined {
  const output = node.outputs[index];
  if (!output || output.isOmitted || output.type?.kind !== "tensor") return undefined;
  const dtype = b.dtype(like);
  if (byteSize(b.dtype(output)) < byteSize(dtype)) return undefined;
  return b.dtype(output) === dtype ? output : b.op("Cast", [output], [attr.int("to", dtype)]);
}

interface Normalization {
  /** The tensor that was normalized. */
  x: Value;
  axes: number[];
  epsilon: number;
  /** True for LayerNormalization (subtracts the mean), false for RMS normalization. */
  centered: boolean;
  /** Forward mean and inverse standard deviation outputs, when the node has them. */
  mean?: Value;
  invStdDev?: Value;
}

/**
 * Emits the backward pass of a layer or RMS normalization followed by `* scale + bias`.
 * With x̂ the normalized input, σ⁻¹ the inverse standard deviation, g = dy · scale
 * and ⟨·⟩ the mean over the normalized axes:
 * dx = σ⁻¹ · (g - ⟨g⟩ - x̂ · ⟨g · x̂⟩), without the ⟨g⟩ term for RMS normalization.
 * dscale = Σ dy · x̂ and dbias = Σ dy, each summed over the axes it was broadcast along.
 * Statistics missing from `norm` are recomputed from x.
 */
function normalizationBackward(context: GradientContext, dy: Value, norm: Normalization, scale: Value | undefined, bias: Value | undefined, needs: { x: boolean; scale: boolean; bias: boolean }): { dx?: Value; dscale?: Value; dbias?: Value } {
  const { b } = context;
  const { x, axes } = norm;
  const dtype = b.dtype(x);
  const xDims = b.dims(x);
  const result: { dx?: Value; dscale?: Value; dbias?: Value } = {};
  if (bias && needs.bias) result.dbias = unbroadcast(b, dy, bias, xDims);
  if (!needs.x && !(scale && needs.scale)) return result;

  let centeredX = x;
  if (norm.centered) centeredX = b.op("Sub", [x, norm.mean ?? meanOver(b, x, axes)]);
  let invStdDev = norm.invStdDev;
  if (!invStdDev) {
    const variance = meanOver(b, b.op("Mul", [centeredX, centeredX]), axes);
    invStdDev = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [variance, b.scalar(norm.epsilon, dtype)])])]);
  }
  const normalized = b.op("Mul", [centeredX, invStdDev]);
  if (scale && needs.scale) result.dscale = unbroadcast(b, b.op("Mul", [dy, normalized]), scale, xDims);
  if (!needs.x) return result;

  const g = scale ? b.op("Mul", [dy, scale]) : dy;
  let inner = b.op("Sub", [g, b.op("Mul", [normalized, meanOver(b, b.op("Mul", [g, normalized]), axes)])]);
  if (norm.centered) inner = b.op("Sub", [inner, meanOver(b, g, axes)]);
  result.dx = b.op("Mul", [inner, invStdDev]);
  return result;
}

/** Rejects a loss that reads a statistics output, whose gradient the rules do not propagate. */
function rejectStatisticGrads(context: GradientContext, indices: readonly number[]): void {
  const { node } = context;
  for (const index of indices) {
    if (context.outputGrads[index]) {
      throw new PeftcError(
        "E_UNKNOWN_DOMAIN",
        `${node.opType} node "${node.name}": the loss depends on output ${index} ("${node.outputs[index].name}"), a normalization statistic, and gradients through it are not supported. Compute the statistic with separate ops if the loss needs it.`,
        { node: node.name },
      );
    }
  }
}

function present(value: Value | undefined): Value | undefined {
  return value && !value.isOmitted ? value : undefined;
}

/** LayerNormalization (opset 17): inputs X, Scale, B (optional); normalizes over the axes from `axis` on. */
export const layerNormalization: GradientRule = (context) => {
  const { b, node } = context;
  rejectStatisticGrads(context, [1, 2]);
  const dy = context.outputGrads[0];
  if (!dy) return [];
  const [x, scale, bias] = [node.inputs[0]!, present(node.inputs[1]), present(node.inputs[2])];
  const norm: Normalization = {
    x,
    axes: normalizedAxes(b, node, x, node.getInt("axis", -1)),
    epsilon: node.getFloat("epsilon", 1e-5),
    centered: true,
    mean: statistic(b, node, 1, x),
    invStdDev: statistic(b, node, 2, x),
  };
  const grads = normalizationBackward(context, dy, norm, scale, bias, { x: context.needsGrad(0), scale: context.needsGrad(1), bias: context.needsGrad(2) });
  return [grads.dx, grads.dscale, grads.dbias];
};

/** onnxruntime's SimplifiedLayerNormalization (RMSNorm, default domain): inputs X and scale; output 1 is the inverse standard deviation. */
export const simplifiedLayerNormalization: GradientRule = (context) => {
  const { b, node } = context;
  rejectStatisticGrads(context, [1]);
  const dy = context.outputGrads[0];
  if (!dy) return [];
  const x = node.inputs[0]!;
  const norm: Normalization = {
    x,
    axes: normalizedAxes(b, node, x, node.getInt("axis", -1)),
    epsilon: node.getFloat("epsilon", 1e-5),
    centered: false,
    invStdDev: statistic(b, node, 1, x),
  };
  const grads = normalizationBackward(context, dy, norm, present(node.inputs[1]), undefined, { x: context.needsGrad(0), scale: context.needsGrad(1), bias: false });
  return [grads.dx, grads.dscale];
};

/**
 * com.microsoft::SkipLayerNormalization (inputs input, skip, gamma, beta?,
 * bias?) and SkipSimplifiedLayerNormalization (input, skip, gamma, bias?):
 * s = input + skip + bias is normalized over the last axis, and output 3
 * returns s itself, so its gradient joins the normalization's. The mean
 * output of the simplified form is zeros and is not read.
 */
function skipNormalization(centered: boolean): GradientRule {
  return (context) => {
    const { b, node } = context;
    rejectStatisticGrads(context, [1, 2]);
    const dy = context.outputGrads[0];
    const sumGrad = context.outputGrads[3];
    const input = node.inputs[0]!;
    const skip = node.inputs[1]!;
    const gamma = present(node.inputs[2]);
    const betaIndex = centered ? 3 : -1;
    const biasIndex = centered ? 4 : 3;
    const beta = centered ? present(node.inputs[betaIndex]) : undefined;
    const bias = present(node.inputs[biasIndex]);
    const sumOutput = present(node.outputs[3]);

    let sum = sumOutput;
    if (!sum) {
      sum = b.op("Add", [input, skip]);
      if (bias) sum = b.op("Add", [sum, bias]);
    }
    const needsSum = context.needsGrad(0) || context.needsGrad(1) || (bias !== undefined && context.needsGrad(biasIndex));
    let dsum: Value | undefined;
    const grads: (Value | undefined)[] = [];
    if (dy) {
      const norm: Normalization = {
        x: b.typed(sum, input),
        axes: [-1],
        epsilon: node.getFloat("epsilon", 1e-12),
        centered,
        mean: centered ? statistic(b, node, 1, input) : undefined,
        invStdDev: statistic(b, node, 2, input),
      };
      const result = normalizationBackward(context, dy, norm, gamma, beta, { x: needsSum, scale: context.needsGrad(2), bias: betaIndex >= 0 && context.needsGrad(betaIndex) });
      dsum = result.dx;
      grads[2] = result.dscale;
      if (betaIndex >= 0) grads[betaIndex] = result.dbias;
    }
    if (sumGrad && needsSum) dsum = dsum ? b.op("Add", [dsum, sumGrad]) : sumGrad;
    if (dsum) {
      const dims = b.dims(node.outputs[0]);
      if (context.needsGrad(0)) grads[0] = unbroadcast(b, dsum, input, dims);
      if (context.needsGrad(1)) grads[1] = unbroadcast(b, dsum, skip, dims);
      if (bias && context.needsGrad(biasIndex)) grads[biasIndex] = unbroadcast(b, dsum, bias, dims);
    }
    return grads;
  };
}

export const skipLayerNormalization = skipNormalization(true);
export const skipSimplifiedLayerNormalization = skipNormalization(false);
