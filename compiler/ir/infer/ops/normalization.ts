import { DataType } from "../../../onnx/dtype";
import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { RuleDefinition } from "../registry";
import { sameAsFirstInput } from "./common";

/**
 * Normalizations in the default domain: LayerNormalization,
 * RMSNormalization, onnxruntime's SimplifiedLayerNormalization (RMSNorm,
 * registered by onnxruntime in the default domain), and the batch, instance
 * and group normalizations, whose output has the input's shape.
 */

/** Shape of saved statistics: the input's shape with every normalized axis (from `axis` on) set to 1. */
export function statisticsShape(ctx: InferenceContext, shape: Dim[] | undefined): Dim[] | undefined {
  if (!shape) return undefined;
  const axis = ctx.axis(ctx.int("axis", -1), shape.length);
  return shape.map((dim, i) => (i < axis ? dim : 1));
}

/**
 * LayerNormalization: Y like X, and optional Mean and InvStdDev with the
 * normalized axes reduced to 1, of the type stash_type names (default float).
 * onnxruntime also runs it in the default domain below opset 17, as the
 * bloom training graph does at opset 15, so the rule starts at 1.
 */
function layerNormalizationRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  ctx.setOutput(0, input.elemType, input.shape);
  const stashType = ctx.int("stash_type", DataType.FLOAT);
  const statistics = statisticsShape(ctx, input.shape);
  ctx.setOutput(1, stashType, statistics);
  ctx.setOutput(2, stashType, statistics);
}

/** SimplifiedLayerNormalization: Y like X, optional inv_std_var (float) with the normalized axes reduced to 1. */
function simplifiedLayerNormalizationRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  ctx.setOutput(0, input.elemType, input.shape);
  ctx.setOutput(1, DataType.FLOAT, statisticsShape(ctx, input.shape));
}

/** BatchNormalization: Y like X; in training mode (opset 14+) running mean and variance shaped like input_mean. */
function batchNormalizationRule(ctx: InferenceContext): void {
  sameAsFirstInput(ctx);
  if (ctx.outputCount > 1 && ctx.hasInput(3)) {
    const mean = ctx.input(3);
    ctx.setOutput(1, mean.elemType, mean.shape);
    ctx.setOutput(2, mean.elemType, mean.shape);
  }
}

export const normalizationRules: RuleDefinition[] = [
  { opType: "LayerNormalization", since: 1, infer: layerNormalizationRule },
  { opType: "RMSNormalization", since: 23, infer: sameAsFirstInput },
  { opType: "SimplifiedLayerNormalization", since: 1, infer: simplifiedLayerNormalizationRule },
  { opType: "BatchNormalization", since: 1, infer: batchNormalizationRule },
  { opType: "InstanceNormalization", since: 1, infer: sameAsFirstInput },
  { opType: "GroupNormalization", since: 18, infer: sameAsFirstInput },
];
