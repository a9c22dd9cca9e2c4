import { Dim, TensorType, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { addDims, divideDims, maxDims, multiplyDims } from "../dims";
import { RuleDefinition } from "../registry";
import { sameAsFirstInput, sizeFromInput } from "./common";

/**
 * onnxruntime's fused attention operators (com.microsoft, opset 1), with the
 * shapes their schemas in onnxruntime's bert_defs.cc document. Attention
 * has packed QKV weights and a 5-D past and present. MultiHeadAttention has
 * separate or packed Q/K/V and a 4-D past and present. GroupQueryAttention
 * has fewer KV heads. RotaryEmbedding's output is shaped like its input.
 */

const MICROSOFT = "com.microsoft";

function positiveAttribute(ctx: InferenceContext, name: string): number {
  const value = ctx.int(name);
  if (value === undefined || value <= 0) ctx.fail(`needs a positive "${name}" attribute`, "Add the attribute to the node.");
  return value;
}

/** Q, K and V hidden sizes of Attention: qkv_hidden_sizes, or the bias length split in three. */
function hiddenSizes(ctx: InferenceContext): [Dim, Dim] {
  const sizes = ctx.ints("qkv_hidden_sizes");
  if (sizes) {
    if (sizes.length !== 3) ctx.fail(`qkv_hidden_sizes must have 3 values, got ${sizes.length}`);
    return [sizes[0], sizes[2]];
  }
  const packed = ctx.hasInput(2) ? ctx.shape(2)?.[0] : ctx.shape(1)?.[1];
  const each = packed === undefined ? null : divideDims(packed, 3);
  return [each, each];
}

/**
 * Attention: input [batch, sequence, input_hidden], output [batch,
 * sequence, v_hidden]. present is [2, batch, heads, past + sequence,
 * head_size], or the past's own shape with past_present_share_buffer.
 */
function attentionRule(ctx: InferenceContext): void {
  const input = ctx.input(0);
  const elemType = ctx.hasInput(2) ? ctx.elemType(2) : input.elemType;
  const heads = positiveAttribute(ctx, "num_heads");
  const [hidden, valueHidden] = hiddenSizes(ctx);
  const shape = input.shape;
  if (shape && shape.length !== 3) ctx.fail(`input must be 3-D [batch, sequence, hidden], got ${formatShape(shape)}`);
  ctx.setOutput(0, elemType, shape ? [shape[0], shape[1], valueHidden] : undefined);
  const past = ctx.optionalInput(4);
  let present: Dim[] | undefined;
  if (past?.shape) {
    if (past.shape.length !== 5) ctx.fail(`past must be 5-D [2, batch, heads, past_sequence, head_size], got ${formatShape(past.shape)}`);
    present = [...past.shape];
    if (!ctx.int("past_present_share_buffer", 0)) present[3] = addDims(past.shape[3], shape?.[1] ?? null);
  } else if (!past && shape) {
    present = [2, shape[0], heads, shape[1], divideDims(hidden, heads)];
  }
  ctx.setOutput(1, past?.elemType ?? elemType, present);
}

/** Brings a 3-D [batch, sequence, heads * size] key or value into [batch, heads, sequence, size]. */
function headsFirst(shape: Dim[], heads: number): Dim[] {
  return shape.length === 4 ? shape : [shape[0], heads, shape[1], divideDims(shape[2], heads)];
}

/** Output of MultiHeadAttention for its three input layouts (separate, packed KV, packed QKV). */
function multiHeadOutput(ctx: InferenceContext, query: Dim[], key: Dim[] | undefined, value: Dim[] | undefined): Dim[] | undefined {
  if (query.length === 5) return [query[0], query[1], multiplyDims(query[2], query[4])];
  if (query.length !== 3) ctx.fail(`query must be 3-D or packed 5-D, got ${formatShape(query)}`);
  if (value) return [query[0], query[1], value.length === 4 ? multiplyDims(value[1], value[3]) : value[2]];
  if (key?.length === 5) return [...query];
  return undefined;
}

/** present_key or present_value of MultiHeadAttention: past plus the new keys, or the new keys alone. */
function multiHeadPresent(ctx: InferenceContext, past: TensorType | undefined, current: Dim[] | undefined, heads: number): Dim[] | undefined {
  const sharesBuffer = ctx.hasInput(8) || ctx.int("past_present_share_buffer", 0) !== 0;
  if (past) {
    if (!past.shape || sharesBuffer) return past.shape;
    const shape = [...past.shape];
    shape[2] = current ? addDims(shape[2], headsFirst(current, heads)[2]) : null;
    return shape;
  }
  return current && current.length !== 5 ? headsFirst(current, heads) : undefined;
}

/**
 * MultiHeadAttention: query(0), key(1), value(2), bias, key_padding_mask,
 * attention_bias, past_key(6), past_value(7), past_sequence_length(8).
 * NOTE: output 3 (qk) has a type independent of the inputs, so it is not set.
 */
function multiHeadAttentionRule(ctx: InferenceContext): void {
  const query = ctx.input(0);
  const heads = positiveAttribute(ctx, "num_heads");
  const key = ctx.optionalInput(1)?.shape;
  const value = ctx.optionalInput(2)?.shape;
  ctx.setOutput(0, query.elemType, query.shape && multiHeadOutput(ctx, query.shape, key, value));
  const pastKey = ctx.optionalInput(6);
  const pastValue = ctx.optionalInput(7);
  ctx.setOutput(1, pastKey?.elemType ?? query.elemType, multiHeadPresent(ctx, pastKey, key, heads));
  ctx.setOutput(2, pastValue?.elemType ?? query.elemType, multiHeadPresent(ctx, pastValue, value, heads));
}

/**
 * GroupQueryAttention: query(0), key(1), value(2), past_key(3),
 * past_value(4), seqlens_k(5), total_sequence_length(6), ... The output
 * has num_heads * head_size columns, and present is [batch, kv_num_heads,
 * max(past_sequence, total_sequence_length), head_size].
 */
function groupQueryAttentionRule(ctx: InferenceContext): void {
  const query = ctx.input(0);
  const heads = positiveAttribute(ctx, "num_heads");
  const kvHeads = positiveAttribute(ctx, "kv_num_heads");
  const shape = query.shape;
  if (shape && shape.length !== 3) ctx.fail(`query must be 3-D [batch, sequence, hidden], got ${formatShape(shape)}`);
  const packed = !ctx.hasInput(1);
  const headSize = shape ? divideDims(shape[2], packed ? heads + 2 * kvHeads : heads) : null;
  ctx.setOutput(0, query.elemType, shape && [shape[0], shape[1], packed ? multiplyDims(headSize, heads) : shape[2]]);
  const total = ctx.hasInput(6) ? (sizeFromInput(ctx, 6) ?? null) : null;
  const past = ctx.optionalInput(3);
  let present: Dim[] | undefined;
  if (past?.shape) {
    const sequence = ctx.int("sliding_window_cache", 0) ? past.shape[2] : maxDims(past.shape[2], total);
    present = [past.shape[0], past.shape[1], sequence, past.shape[3]];
  } else if (!past && shape) {
    present = [shape[0], kvHeads, total ?? (packed ? shape[1] : ctx.shape(1)?.[1] ?? null), headSize];
  }
  ctx.setOutput(1, past?.elemType ?? query.elemType, present);
  ctx.setOutput(2, ctx.optionalInput(4)?.elemType ?? query.elemType, present);
  if (shape) ctx.setOutput(3, query.elemType, [shape[0], heads, shape[1], total]);
}

export const attentionContribRules: RuleDefinition[] = [
  { opType: "Attention", domain: MICROSOFT, since: 1, infer: attentionRule },
  { opType: "MultiHeadAttention", domain: MICROSOFT, since: 1, infer: multiHeadAttentionRule },
  { opType: "GroupQueryAttention", domain: MICROSOFT, since: 1, infer: groupQueryAttentionRule },
  { opType: "RotaryEmbedding", domain: MICROSOFT, since: 1, infer: sameAsFirstInput },
];
