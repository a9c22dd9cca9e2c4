import { PeftcError } from "../errors";
import type { GradBuilder } from "../autodiff/grad-builder";
import { attr } from "../ir/attribute";
import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { dependsOn, kvHeadValue } from "../kvcache/rewrite";
import type { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";

/** The tensors one attention layer's prefix reads. */
export interface BlockPrefix {
  layer: number;
  /** Key prefix [kv_heads, virtual_tokens, head_dim], not rotated. */
  key: Value;
  /** Value prefix [kv_heads, virtual_tokens, head_dim]. */
  value: Value;
  /** UniPELT gate: the block's input and the weight [hidden, 1] and bias [1] of sigmoid(x·w + b); null without a gate. */
  gate: { input: Value; weight: Value; bias: Value } | null;
}

/** The decomposed core of one attention block, by node. */
export interface CoreNodes {
  scores: Node;
  softmax: Node;
  context: Node;
}

/**
 * Puts `prefix` in front of a block's keys and values along the sequence
 * axis, where the KV cache keeps them: after rotary, before grouped-query
 * attention repeats the heads. On a cached graph (after addKvCache) the
 * prefix goes in front of the present keys and values for the attention
 * readers only, so the present outputs and the caller's attention_mask
 * cover real tokens only. The additive mask before the softmax gets
 * `virtualTokens` leading zero columns, so every query attends to the
 * whole prefix. `paddedMasks` shares one padded mask between layers that read
 * the same mask.
 */
export function insertBlockPrefix(b: GradBuilder, core: CoreNodes, prefix: BlockPrefix, virtualTokens: number, dtype: DataType, paddedMasks: Map<Value, Value>): void {
  const keys = kvHeadValue(b, core.scores, true, prefix.layer);
  const values = kvHeadValue(b, core.context, false, prefix.layer);
  prependToSequence(b, keys, prefix.key);
  prependToSequence(b, values, prefix.value);
  padMask(b, core, prefix.layer, virtualTokens, dtype, paddedMasks);
  if (prefix.gate) gatePrefixColumns(b, core, prefix.gate, virtualTokens);
}

/** Moves every node reader of `current` [batch, kv_heads, sequence, head_dim] to concat(prefix broadcast over the batch, current). */
function prependToSequence(b: GradBuilder, current: Value, prefix: Value): void {
  const readers = [...current.uses];
  const batch = b.op("Slice", [b.shape(current), b.ints([0]), b.ints([1])]);
  const expandShape = b.op("Concat", [batch, b.ints([1, 1, 1])], [attr.int("axis", 0)]);
  const perRow = b.op("Expand", [b.unsqueeze(prefix, [0]), expandShape]);
  const joined = b.op("Concat", [perRow, current], [attr.int("axis", 2)]);
  for (const use of readers) use.node.setInput(use.index, joined);
}

/**
 * Gives the additive mask before the softmax `virtualTokens` leading zero
 * columns. A core without such an Add masks nothing, so every key,
 * prefix included, is already visible.
 */
function padMask(b: GradBuilder, core: CoreNodes, layer: number, virtualTokens: number, dtype: DataType, paddedMasks: Map<Value, Value>): void {
  const add = core.softmax.inputs[0]?.producer;
  if (add?.opType !== "Add") return;
  const scoreSide = add.inputs.findIndex((input) => input !== undefined && dependsOn(input, core.scores));
  if (scoreSide < 0) return;
  const mask = add.inputs[1 - scoreSide]!;
  const dims = b.dims(mask);
  if (dims && dims.length > 0 && dims[dims.length - 1] === 1) {
    throw new PeftcError("E_UNKNOWN_DOMAIN", `prefix tuning: layer ${layer}: the mask "${mask.name}" before the softmax broadcasts over the keys (last axis 1), so it cannot get columns for the prefix. Export the model with a [batch, 1, query, key] mask.`, { value: mask.name });
  }
  let padded = paddedMasks.get(mask);
  if (!padded) {
    const leading = b.op("Slice", [b.shape(mask), b.ints([0]), b.ints([-1])]);
    const zerosShape = b.op("Concat", [leading, b.ints([virtualTokens])], [attr.int("axis", 0)]);
    const zero = Tensor.fromArray("zero", dtype, [1], new Float32Array(1));
    const zeros = b.op("ConstantOfShape", [zerosShape], [attr.tensor("value", zero)]);
    padded = b.op("Concat", [zeros, mask], [attr.int("axis", -1)]);
    paddedMasks.set(mask, padded);
  }
  add.setInput(1 - scoreSide, padded);
}

/**
 * Scales the attention probabilities of the prefix columns by
 * g = sigmoid(x·w + b), one gate per query token (UniPELT), so the layer
 * learns how much of each query's attention the prefix gets. g depends on
 * the query token only, so cached decoding gives the same result.
 */
function gatePrefixColumns(b: GradBuilder, core: CoreNodes, gate: NonNullable<BlockPrefix["gate"]>, virtualTokens: number): void {
  const probabilities = core.context.inputs[0]!;
  const logit = b.op("Add", [b.op("MatMul", [gate.input, gate.weight]), gate.bias]);
  // g is [batch, query, 1] (or [batch·query, 1] after a 2-D Gemm input); [batch, 1, query, 1] scales every head's row.
  const probabilityShape = b.shape(probabilities);
  const gateShape = b.op("Concat", [b.op("Slice", [probabilityShape, b.ints([0]), b.ints([1])]), b.ints([1]), b.op("Slice", [probabilityShape, b.ints([2]), b.ints([3])]), b.ints([1])], [attr.int("axis", 0)]);
  const perQuery = b.op("Reshape", [b.op("Sigmoid", [logit]), gateShape]);
  const prefixColumns = b.op("Slice", [probabilities, b.ints([0]), b.ints([virtualTokens]), b.ints([-1])]);
  const tokenColumns = b.op("Slice", [probabilities, b.ints([virtualTokens]), b.ints([2 ** 62]), b.ints([-1])]);
  const gated = b.op("Concat", [b.op("Mul", [prefixColumns, perQuery]), tokenColumns], [attr.int("axis", -1)]);
  core.context.setInput(0, gated);
}
