import { DataType } from "../../../onnx/dtype";
import { formatShape } from "../../types";
import { InferenceContext } from "../context";
import { RuleDefinition } from "../registry";
import { rulesFor, sameAsFirstInput } from "./common";

/**
 * onnxruntime's fused layers (com.microsoft, opset 1) other than attention:
 * SkipLayerNormalization, SkipSimplifiedLayerNormalization,
 * EmbedLayerNormalization and the fused GELU activations. Shapes follow the
 * operator schemas in onnxruntime's contrib_defs.cc and bert_defs.cc.
 */

const MICROSOFT = "com.microsoft";

/**
 * Skip(Simplified)LayerNormalization: output and input_skip_bias_sum
 * (outputs 0 and 3) have the input's type and shape. Outputs 1 and 2 (mean,
 * inv_std_var) are float and hold one value per normalized row: the
 * input's shape with the last axis 1. In onnxruntime 1.31 the schema's
 * shape inference and the CPU kernel agree on that shape, for 2-D and 3-D
 * inputs of both operators (SkipSimplifiedLayerNormalization fills mean
 * with zeros).
 */
function skipLayerNormalizationRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  const statistics = input.shape && input.shape.length > 0 ? [...input.shape.slice(0, -1), 1] : undefined;
  ctx.setOutput(0, input.elemType, input.shape);
  ctx.setOutput(1, DataType.FLOAT, statistics);
  ctx.setOutput(2, DataType.FLOAT, statistics);
  ctx.setOutput(3, input.elemType, input.shape);
}

/**
 * EmbedLayerNormalization: inputs input_ids, segment_ids?, word_embedding,
 * position_embedding, segment_embedding?, gamma, beta, mask?, position_ids?.
 * Output [batch, sequence, hidden] with the embedding's type, mask_index
 * int32 [batch], and the optional embedding_sum like the output.
 */
function embedLayerNormalizationRule(ctx: InferenceContext): void {
  const ids = ctx.shape(0);
  const embedding = ctx.input(2);
  if (ids && ids.length !== 2) ctx.fail(`input_ids must be 2-D [batch, sequence], got ${formatShape(ids)}`);
  if (embedding.shape && embedding.shape.length !== 2) ctx.fail(`word_embedding must be 2-D [vocabulary, hidden], got ${formatShape(embedding.shape)}`);
  const hidden = embedding.shape?.[1] ?? null;
  const output = ids ? [ids[0], ids[1], hidden] : undefined;
  ctx.setOutput(0, embedding.elemType, output);
  ctx.setOutput(1, DataType.INT32, ids ? [ids[0]] : undefined);
  ctx.setOutput(2, embedding.elemType, output);
}

export const contribLayerRules: RuleDefinition[] = [
  { opType: "SkipLayerNormalization", domain: MICROSOFT, since: 1, infer: skipLayerNormalizationRule },
  { opType: "SkipSimplifiedLayerNormalization", domain: MICROSOFT, since: 1, infer: skipLayerNormalizationRule },
  { opType: "EmbedLayerNormalization", domain: MICROSOFT, since: 1, infer: embedLayerNormalizationRule },
  // X plus an optional bias broadcast along the last axis, so the output keeps X's shape.
  ...rulesFor(
    ["FastGelu", "BiasGelu", "Gelu", "QuickGelu", "BiasSoftmax"].map((opType) => [opType, 1] as const),
    sameAsFirstInput,
    MICROSOFT,
  ),
];
