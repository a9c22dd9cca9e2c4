import { Dim, TensorType, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { addDims, divideDims, multiplyDims } from "../dims";
import { RuleDefinition } from "../registry";
import { sameAsFirstInput } from "./common";

/**
 * ONNX Attention (opset 23) and RotaryEmbedding (opset 23).
 *
 * Attention takes Q, K, V as 4-D [batch, heads, sequence, head_size] or as
 * 3-D [batch, sequence, heads * head_size] with the q_num_heads and
 * kv_num_heads attributes. Optional past_key/past_value (inputs 4, 5) are
 * 4-D, and present_key/present_value (outputs 1, 2) append K and V to them
 * on the sequence axis. qk_matmul_output (output 3) is
 * [batch, q_heads, q_sequence, total_sequence].
 */

interface AttentionLayout {
  batch: Dim;
  qHeads: Dim;
  qSequence: Dim;
  kvSequence: Dim;
  /** K and V in [batch, kv_heads, kv_sequence, head_size] form. */
  key: Dim[];
  value: Dim[];
}

function headsAttribute(ctx: InferenceContext, name: string): number {
  const heads = ctx.int(name);
  if (heads === undefined || heads <= 0) ctx.fail(`3-D inputs need a positive "${name}" attribute`, "Add the attribute to the node.");
  return heads;
}

/** Brings 3-D K or V ([batch, sequence, heads * size]) into [batch, heads, sequence, size]. */
function splitHeads(shape: Dim[], heads: number): Dim[] {
  return [shape[0], heads, shape[1], divideDims(shape[2], heads)];
}

function layout(ctx: InferenceContext, q: Dim[], k: Dim[], v: Dim[]): AttentionLayout {
  if (q.length === 4) {
    if (k.length !== 4 || v.length !== 4) ctx.fail(`with 4-D Q, K and V must be 4-D too, got ${formatShape(k)} and ${formatShape(v)}`);
    return { batch: q[0], qHeads: q[1], qSequence: q[2], kvSequence: k[2], key: k, value: v };
  }
  if (q.length !== 3 || k.length !== 3 || v.length !== 3) {
    ctx.fail(`Q, K and V must all be 3-D or all 4-D, got ${formatShape(q)}, ${formatShape(k)} and ${formatShape(v)}`);
  }
  const kvHeads = headsAttribute(ctx, "kv_num_heads");
  return { batch: q[0], qHeads: headsAttribute(ctx, "q_num_heads"), qSequence: q[1], kvSequence: k[1], key: splitHeads(k, kvHeads), value: splitHeads(v, kvHeads) };
}

/** Appends `current` to `past` on the sequence axis (2), or returns `current` without a past. */
function present(past: TensorType | undefined, current: Dim[]): Dim[] | undefined {
  if (!past) return current;
  if (!past.shape) return undefined;
  const shape = [...past.shape];
  shape[2] = addDims(shape[2], current[2]);
  return shape;
}

function attentionRule(ctx: InferenceContext): void {
  const query = ctx.input(0);
  const key = ctx.input(1);
  const value = ctx.input(2);
  const pastKey = ctx.optionalInput(4);
  const pastValue = ctx.optionalInput(5);
  if (!query.shape || !key.shape || !value.shape) {
    ctx.setOutput(0, query.elemType, undefined);
    return;
  }
  const parts = layout(ctx, query.shape, key.shape, value.shape);
  const valueHeadSize = parts.value[3];
  const output = query.shape.length === 4 ? [parts.batch, parts.qHeads, parts.qSequence, valueHeadSize] : [parts.batch, parts.qSequence, multiplyDims(parts.qHeads, valueHeadSize)];
  ctx.setOutput(0, query.elemType, output);
  const presentKey = present(pastKey, parts.key);
  const presentValue = present(pastValue, parts.value);
  ctx.setOutput(1, pastKey?.elemType ?? key.elemType, presentKey);
  ctx.setOutput(2, pastValue?.elemType ?? value.elemType, presentValue);
  const total = presentKey ? presentKey[2] : null;
  ctx.setOutput(3, query.elemType, [parts.batch, parts.qHeads, parts.qSequence, total]);
}

export const attentionRules: RuleDefinition[] = [
  { opType: "Attention", since: 23, infer: attentionRule },
  { opType: "RotaryEmbedding", since: 23, infer: sameAsFirstInput },
];
