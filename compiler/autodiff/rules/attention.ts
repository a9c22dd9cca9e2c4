import { PeftcError } from "../../errors";
import { attr } from "../../ir/attribute";
import { addDims, divideDims, multiplyDims } from "../../ir/infer/dims";
import type { Node } from "../../ir/node";
import type { Dim } from "../../ir/types";
import type { Value } from "../../ir/value";
import { DataType } from "../../onnx/dtype";
import { type Expansion, differentiateByExpansion } from "../expand";
import type { GradientContext } from "../rule";

/**
 * Gradient rules for onnxruntime's fused attention ops (com.microsoft
 * Attention, MultiHeadAttention and GroupQueryAttention), by decomposition.
 * Each rule recomputes the op's forward pass in default-domain ops (Q, K, V
 * projections where the op has them, head split, scaled scores, additive
 * masks, softmax, context, head merge) and differentiates that. Forms the
 * decomposition does not model raise E_UNKNOWN_DOMAIN naming the node and
 * the attribute or input. Semantics follow onnxruntime's ContribOperators
 * documentation, and attention.test.ts compares each decomposition's
 * forward pass with onnxruntime 1.31's CPU kernels.
 */

/** onnxruntime's default mask_filter_value: the score added where a mask blocks a key. */
const DEFAULT_MASK_FILTER = -10000;

/** Shape of a per-head tensor, [batch, heads, sequence, head size]. */
type HeadDims = [Dim, Dim, Dim, Dim];

/** Tensor dims of a value, or undefined when its rank is not `rank`. */
function dimsOfRank(e: Expansion, value: Value, rank: number): Dim[] | undefined {
  const dims = e.b.dims(value);
  return dims && dims.length === rank ? dims : undefined;
}

function unsupported(node: Node, what: string, fix: string): PeftcError {
  return new PeftcError(
    "E_UNKNOWN_DOMAIN",
    `no gradient rule for ${node.qualifiedOpType} (node "${node.name}") with ${what}: its decomposition does not model this form. ${fix}`,
    { node: node.name, op: node.qualifiedOpType },
  );
}

/** Raises unless integer attribute `name` is absent or equal to `expected`. */
function requireIntAttribute(node: Node, name: string, expected: number): void {
  const value = node.getInt(name);
  if (value !== undefined && value !== expected) throw unsupported(node, `attribute ${name}=${value}`, `Only ${name}=${expected} (the default) is supported.`);
}

/** Raises unless float attribute `name` is absent or equal to `expected`. */
function requireFloatAttribute(node: Node, name: string, expected: number): void {
  const value = node.getFloat(name);
  if (value !== undefined && value !== expected) throw unsupported(node, `attribute ${name}=${value}`, `Only ${name}=${expected} (the default) is supported.`);
}

/** Raises when optional input `index` is present. */
function requireAbsentInput(node: Node, index: number, name: string): void {
  const input = node.inputs[index];
  if (input && !input.isOmitted) throw unsupported(node, `input ${index} (${name}) "${input.name}"`, `Leave ${name} empty.`);
}

function requireNumHeads(node: Node, name = "num_heads"): number {
  const heads = node.getInt(name);
  if (heads === undefined || heads <= 0) throw new PeftcError("E_ONNX_INVALID", `node "${node.name}" (${node.qualifiedOpType}): attribute ${name} is missing or not positive.`, { node: node.name });
  return heads;
}

function requireRank(e: Expansion, node: Node, value: Value, rank: number, role: string): Dim[] {
  const dims = dimsOfRank(e, value, rank);
  if (!dims) {
    const actual = e.b.dims(value);
    throw unsupported(node, `${role} "${value.name}" of shape ${actual ? `[${actual.join(", ")}]` : "unknown"}`, `The decomposition needs ${role} of rank ${rank} with a shape from inference.`);
  }
  return dims;
}

/** [batch, sequence, heads · size] → [batch, heads, sequence, size]. */
function splitHeads(e: Expansion, x: Value, dims: readonly Dim[], heads: number, dtype: DataType): { value: Value; dims: HeadDims } {
  const headSize = divideDims(dims[2], heads);
  const reshaped = e.op("Reshape", [x, e.b.ints([0, 0, heads, -1])], [], dtype, [dims[0], dims[1], heads, headSize]);
  const headDims: HeadDims = [dims[0], heads, dims[1], headSize];
  return { value: e.op("Transpose", [reshaped], [attr.ints("perm", [0, 2, 1, 3])], dtype, headDims), dims: headDims };
}

/** [batch, heads, sequence, size] → [batch, sequence, heads · size]. */
function mergeHeads(e: Expansion, x: Value, dims: HeadDims, dtype: DataType): Value {
  const transposed = e.op("Transpose", [x], [attr.ints("perm", [0, 2, 1, 3])], dtype, [dims[0], dims[2], dims[1], dims[3]]);
  return e.op("Reshape", [transposed, e.b.ints([0, 0, -1])], [], dtype, [dims[0], dims[2], multiplyDims(dims[1], dims[3])]);
}

/** Appends `next` after `past` along the sequence axis of [batch, heads, sequence, size] tensors. */
function appendToCache(e: Expansion, past: Value, next: { value: Value; dims: HeadDims }, dtype: DataType): { value: Value; dims: HeadDims } {
  const pastDims = e.b.dims(past);
  const dims: HeadDims = [next.dims[0], next.dims[1], addDims(pastDims?.[2] ?? null, next.dims[2]), next.dims[3]];
  return { value: e.op("Concat", [past, next.value], [attr.int("axis", 2)], dtype, dims), dims };
}

/** Size of axis `axis` of `value` at run time, as an int64 scalar. */
function runtimeDim(e: Expansion, value: Value, axis: number): Value {
  return e.b.op("Gather", [e.b.shape(value), e.b.intScalar(axis)]);
}

/**
 * Builds the additive causal mask of `queries` queries against `keys` keys,
 * where the queries are the last ones of the key sequence. Query i attends
 * to key j when j ≤ i + keys - queries. Shape [queries, keys], zero where
 * allowed.
 */
function causalMask(e: Expansion, query: Value, key: Value, filter: number, dtype: DataType): Value {
  const b = e.b;
  const queries = runtimeDim(e, query, 2);
  const keys = runtimeDim(e, key, 2);
  const zero = b.intScalar(0);
  const one = b.intScalar(1);
  const lastVisible = b.op("Add", [b.op("Range", [zero, queries, one]), b.op("Sub", [keys, queries])]);
  const blocked = b.op("Greater", [b.op("Range", [zero, keys, one]), b.unsqueeze(lastVisible, [1])]);
  return b.op("Where", [blocked, b.scalar(filter, dtype), b.scalar(0, dtype)]);
}

/** Builds the additive mask of a [batch, keys] 0/1 key mask (0 blocks the key), shaped [batch, 1, 1, keys]. */
function keyPaddingMask(e: Expansion, mask: Value, filter: number, dtype: DataType): Value {
  const b = e.b;
  const keep = b.op("Cast", [mask], [attr.int("to", DataType.BOOL)]);
  return b.unsqueeze(b.op("Where", [keep, b.scalar(0, dtype), b.scalar(filter, dtype)]), [1, 2]);
}

interface AttendOptions {
  /** Score scale; default 1/√(query head size). */
  scale: number | undefined;
  /** Additive masks and biases, each broadcastable to [batch, heads, queries, keys]. */
  additive: Value[];
}

/** softmax(q·kᵀ·scale + masks)·v on [batch, heads, sequence, size] tensors. */
function attend(e: Expansion, q: { value: Value; dims: HeadDims }, k: { value: Value; dims: HeadDims }, v: { value: Value; dims: HeadDims }, options: AttendOptions, dtype: DataType): { value: Value; dims: HeadDims } {
  const b = e.b;
  const [batch, heads, queries, headSize] = q.dims;
  const keys = k.dims[2];
  const scoreDims = [batch, heads, queries, keys];
  const keyT = e.op("Transpose", [k.value], [attr.ints("perm", [0, 1, 3, 2])], dtype, [k.dims[0], k.dims[1], k.dims[3], keys]);
  let scores = e.op("MatMul", [q.value, keyT], [], dtype, scoreDims);
  const scale = options.scale ?? (typeof headSize === "number" ? 1 / Math.sqrt(headSize) : undefined);
  if (scale === undefined) throw new PeftcError("E_UNKNOWN_DOMAIN", `attention decomposition: the head size of "${q.value.name}" is not static, so the default scale 1/√(head size) is unknown.`);
  scores = e.op("Mul", [scores, b.scalar(scale, dtype)], [], dtype, scoreDims);
  for (const mask of options.additive) scores = e.op("Add", [scores, mask], [], dtype, scoreDims);
  const probabilities = e.op("Softmax", [scores], [attr.int("axis", -1)], dtype, scoreDims);
  const dims: HeadDims = [batch, heads, queries, v.dims[3]];
  return { value: e.op("MatMul", [probabilities, v.value], [], dtype, dims), dims };
}

/** Returns the static size of `dim`, or raises naming what needs it. */
function staticSize(node: Node, dim: Dim | undefined, what: string): number {
  if (typeof dim !== "number") throw unsupported(node, `a symbolic ${what}`, `The decomposition needs the ${what} as a static size.`);
  return dim;
}

/** Slices [start, end) of the last axis of `x`. */
function sliceLast(e: Expansion, x: Value, start: number, end: number, dims: readonly Dim[], dtype: DataType): Value {
  return e.op("Slice", [x, e.b.ints([start]), e.b.ints([end]), e.b.ints([-1])], [], dtype, [...dims.slice(0, -1), end - start]);
}

/**
 * com.microsoft::Attention: one packed projection x·W + bias gives Q, K
 * and V (sizes from qkv_hidden_sizes, else thirds). Supports num_heads,
 * qkv_hidden_sizes, unidirectional, scale, mask_filter_value, a 2-D
 * [batch, keys] mask_index (0 blocks a key) and attention_bias. Rejects
 * past state, past_sequence_length, rotary embedding and other mask_index
 * forms.
 */
export function expandAttention(e: Expansion, { node }: GradientContext): (Value | undefined)[] {
  const b = e.b;
  const [input, weights, bias, maskIndex] = node.inputs;
  requireAbsentInput(node, 4, "past");
  requireAbsentInput(node, 6, "past_sequence_length");
  requireIntAttribute(node, "do_rotary", 0);
  requireIntAttribute(node, "past_present_share_buffer", 0);
  const heads = requireNumHeads(node);
  const dtype = b.dtype(input!);
  const inputDims = requireRank(e, node, input!, 3, "input");
  const weightDims = requireRank(e, node, weights!, 2, "weights");
  const total = staticSize(node, weightDims[1], "projection width of the weights");
  const sizes = node.getInts("qkv_hidden_sizes") ?? [total / 3, total / 3, total / 3];
  if (sizes.length !== 3 || sizes.some((size) => !Number.isInteger(size) || size % heads !== 0) || sizes[0] !== sizes[1]) {
    throw unsupported(node, `qkv_hidden_sizes [${sizes.join(", ")}] for a projection width of ${total}`, "Q and K need one width and every width a multiple of num_heads.");
  }

  const projectedDims = [inputDims[0], inputDims[1], total];
  let projected = e.op("MatMul", [input, weights], [], dtype, projectedDims);
  if (bias && !bias.isOmitted) projected = e.op("Add", [projected, bias], [], dtype, projectedDims);
  const offsets = [0, sizes[0], sizes[0] + sizes[1], total];
  const [q, k, v] = [0, 1, 2].map((part) => {
    const slice = sliceLast(e, projected, offsets[part], offsets[part + 1], projectedDims, dtype);
    return splitHeads(e, slice, [inputDims[0], inputDims[1], sizes[part]], heads, dtype);
  });

  const filter = node.getFloat("mask_filter_value", DEFAULT_MASK_FILTER);
  const additive: Value[] = [];
  if (node.getInt("unidirectional", 0) === 1) additive.push(causalMask(e, q.value, k.value, filter, dtype));
  if (maskIndex && !maskIndex.isOmitted) {
    const rank = b.rank(maskIndex);
    if (rank !== 2) throw unsupported(node, `mask_index "${maskIndex.name}" of rank ${rank ?? "unknown"}`, "Only a 2-D [batch, keys] mask_index of 0 and 1 is supported.");
    additive.push(keyPaddingMask(e, maskIndex, filter, dtype));
  }
  const attentionBias = node.inputs[5];
  if (attentionBias && !attentionBias.isOmitted) additive.push(attentionBias);

  const context = attend(e, q, k, v, { scale: node.getFloat("scale"), additive }, dtype);
  return [mergeHeads(e, context.value, context.dims, dtype)];
}

export const attention = differentiateByExpansion(expandAttention);

/**
 * com.microsoft::MultiHeadAttention with separate query, key and value.
 * Key and value are either [batch, keys, hidden] or already split as
 * [batch, heads, keys, head size]. In the 3-D form, bias and
 * past_key/past_value apply, and present_key/present_value are the
 * concatenated caches. The 4-D form is cross-attention over a cache, and
 * onnxruntime adds no bias to it. Supports num_heads, unidirectional,
 * scale, mask_filter_value, a 2-D [batch, keys] key_padding_mask (0 blocks
 * a key) and attention_bias. Rejects packed QKV or KV, other
 * key_padding_mask forms, past_sequence_length, cache_indirection and the
 * qk output.
 */
export function expandMultiHeadAttention(e: Expansion, { node, outputGrads }: GradientContext): (Value | undefined)[] {
  const b = e.b;
  const [query, key, value, bias, keyPaddingMaskInput, attentionBias, pastKey, pastValue] = node.inputs;
  requireAbsentInput(node, 8, "past_sequence_length");
  requireAbsentInput(node, 9, "cache_indirection");
  if (outputGrads[3]) throw unsupported(node, "a loss that reads output 3 (qk)", "Keep the loss from reading the attention scores.");
  const heads = requireNumHeads(node);
  const dtype = b.dtype(query!);
  const queryDims = requireRank(e, node, query!, 3, "query");
  if (!key || key.isOmitted || !value || value.isOmitted) throw unsupported(node, "packed QKV or KV in one input", "Pass query, key and value separately.");
  const keyRank = b.rank(key);
  if (keyRank !== 3 && keyRank !== 4) throw unsupported(node, `key "${key.name}" of rank ${keyRank ?? "unknown"}`, "key must be [batch, keys, hidden] or [batch, heads, keys, head size].");

  const hidden = staticSize(node, queryDims[2], "query hidden size");
  let queryInput = query!;
  let keyInput = key;
  let valueInput = value;
  if (bias && !bias.isOmitted) {
    queryInput = e.op("Add", [query, sliceLast(e, bias, 0, hidden, [null], dtype)], [], dtype, queryDims);
    if (keyRank === 3) {
      const keyDims = requireRank(e, node, key, 3, "key");
      const valueDims = requireRank(e, node, value, 3, "value");
      const valueHidden = staticSize(node, valueDims[2], "value hidden size");
      keyInput = e.op("Add", [key, sliceLast(e, bias, hidden, 2 * hidden, [null], dtype)], [], dtype, keyDims);
      valueInput = e.op("Add", [value, sliceLast(e, bias, 2 * hidden, 2 * hidden + valueHidden, [null], dtype)], [], dtype, valueDims);
    }
  }

  const q = splitHeads(e, queryInput, queryDims, heads, dtype);
  let k: { value: Value; dims: HeadDims };
  let v: { value: Value; dims: HeadDims };
  let presentKey: Value | undefined;
  let presentValue: Value | undefined;
  if (keyRank === 3) {
    k = splitHeads(e, keyInput, requireRank(e, node, key, 3, "key"), heads, dtype);
    v = splitHeads(e, valueInput, requireRank(e, node, value, 3, "value"), heads, dtype);
    const hasPastKey = pastKey !== undefined && !pastKey.isOmitted;
    const hasPastValue = pastValue !== undefined && !pastValue.isOmitted;
    if (hasPastKey !== hasPastValue) throw new PeftcError("E_ONNX_INVALID", `node "${node.name}" (${node.qualifiedOpType}): past_key and past_value must be given together.`, { node: node.name });
    if (pastKey && pastValue && hasPastKey) {
      k = appendToCache(e, pastKey, k, dtype);
      v = appendToCache(e, pastValue, v, dtype);
    }
    presentKey = k.value;
    presentValue = v.value;
  } else {
    if (pastKey && !pastKey.isOmitted) throw unsupported(node, "past_key together with a 4-D key", "A 4-D key already contains the whole cache, so pass no past_key.");
    const keyDims = requireRank(e, node, key, 4, "key");
    const valueDims = requireRank(e, node, value, 4, "value");
    k = { value: key, dims: keyDims as HeadDims };
    v = { value: value, dims: valueDims as HeadDims };
  }

  const filter = node.getFloat("mask_filter_value", DEFAULT_MASK_FILTER);
  const additive: Value[] = [];
  if (node.getInt("unidirectional", 0) === 1) additive.push(causalMask(e, q.value, k.value, filter, dtype));
  if (keyPaddingMaskInput && !keyPaddingMaskInput.isOmitted) {
    const rank = b.rank(keyPaddingMaskInput);
    if (rank !== 2) throw unsupported(node, `key_padding_mask "${keyPaddingMaskInput.name}" of rank ${rank ?? "unknown"}`, "Only a 2-D [batch, keys] key_padding_mask of 0 and 1 is supported.");
    additive.push(keyPaddingMask(e, keyPaddingMaskInput, filter, dtype));
  }
  if (attentionBias && !attentionBias.isOmitted) additive.push(attentionBias);

  const context = attend(e, q, k, v, { scale: node.getFloat("scale"), additive }, dtype);
  return [mergeHeads(e, context.value, context.dims, dtype), presentKey, presentValue];
}

export const multiHeadAttention = differentiateByExpansion(expandMultiHeadAttention);

/** Returns GroupQueryAttention's causal mask fill: a negative value that `dtype` can hold (float16's lowest, else -3e38), so masked keys get zero weight. */
function lowestFinite(dtype: DataType): number {
  return dtype === DataType.FLOAT16 ? -65504 : -3.0e38;
}

/**
 * com.microsoft::GroupQueryAttention with separate query, key and value:
 * causal attention where each group of num_heads / kv_num_heads query heads
 * shares one key/value head, and present_key/present_value are past_key/
 * past_value with the new keys and values appended. Supports num_heads,
 * kv_num_heads and scale. Rejects packed QKV, rotary embedding (do_rotary,
 * cos_cache, sin_cache), local_window_size, softcap, smooth_softmax,
 * qk_output, position_ids, attention_bias and head_sink.
 *
 * NOTE: seqlens_k and total_sequence_length are not read. The decomposition
 * assumes every batch row has the same past length, the past buffer's
 * length (seqlens_k[b] = past length + sequence length - 1, no padding), as
 * in a training batch without padding. With per-row lengths or a shared
 * past/present buffer onnxruntime writes new keys at each row's own
 * position, and these gradients would not match.
 */
export function expandGroupQueryAttention(e: Expansion, { node, outputGrads }: GradientContext): (Value | undefined)[] {
  const b = e.b;
  const [query, key, value, pastKey, pastValue] = node.inputs;
  requireIntAttribute(node, "do_rotary", 0);
  requireIntAttribute(node, "local_window_size", -1);
  requireFloatAttribute(node, "softcap", 0);
  requireIntAttribute(node, "smooth_softmax", 0);
  requireIntAttribute(node, "qk_output", 0);
  requireAbsentInput(node, 7, "cos_cache");
  requireAbsentInput(node, 8, "sin_cache");
  requireAbsentInput(node, 9, "position_ids");
  requireAbsentInput(node, 10, "attention_bias");
  requireAbsentInput(node, 11, "head_sink");
  if (outputGrads[3]) throw unsupported(node, "a loss that reads output 3 (output_qk)", "Keep the loss from reading the attention scores.");
  const heads = requireNumHeads(node);
  const kvHeads = requireNumHeads(node, "kv_num_heads");
  if (heads % kvHeads !== 0) throw new PeftcError("E_ONNX_INVALID", `node "${node.name}" (${node.qualifiedOpType}): num_heads ${heads} is not a multiple of kv_num_heads ${kvHeads}.`, { node: node.name });
  if (!key || key.isOmitted || !value || value.isOmitted) throw unsupported(node, "packed QKV in the query input", "Pass query, key and value separately.");
  const dtype = b.dtype(query!);

  const q = splitHeads(e, query!, requireRank(e, node, query!, 3, "query"), heads, dtype);
  let k = splitHeads(e, key, requireRank(e, node, key, 3, "key"), kvHeads, dtype);
  let v = splitHeads(e, value, requireRank(e, node, value, 3, "value"), kvHeads, dtype);
  if (pastKey && !pastKey.isOmitted) k = appendToCache(e, pastKey, k, dtype);
  if (pastValue && !pastValue.isOmitted) v = appendToCache(e, pastValue, v, dtype);
  const present = [k.value, v.value];

  const groupSize = heads / kvHeads;
  if (groupSize > 1) {
    k = repeatHeads(e, k, groupSize, dtype);
    v = repeatHeads(e, v, groupSize, dtype);
  }
  const additive = [causalMask(e, q.value, k.value, lowestFinite(dtype), dtype)];
  const context = attend(e, q, k, v, { scale: node.getFloat("scale"), additive }, dtype);
  return [mergeHeads(e, context.value, context.dims, dtype), ...present];
}

export const groupQueryAttention = differentiateByExpansion(expandGroupQueryAttention);

/** Repeats each key/value head `groupSize` times in a row, so query head h reads key/value head ⌊h / groupSize⌋. */
function repeatHeads(e: Expansion, x: { value: Value; dims: HeadDims }, groupSize: number, dtype: DataType): { value: Value; dims: HeadDims } {
  const [batch, heads, sequence, size] = x.dims;
  if (typeof heads !== "number" || typeof size !== "number") throw new PeftcError("E_UNKNOWN_DOMAIN", `attention decomposition: "${x.value.name}" needs a static head count and head size to repeat its heads.`);
  const unsqueezed = e.op("Unsqueeze", [x.value, e.b.ints([2])], [], dtype, [batch, heads, 1, sequence, size]);
  const copies = e.op("Concat", Array.from({ length: groupSize }, () => unsqueezed), [attr.int("axis", 2)], dtype, [batch, heads, groupSize, sequence, size]);
  const dims: HeadDims = [batch, heads * groupSize, sequence, size];
  return { value: e.op("Reshape", [copies, e.b.ints([0, heads * groupSize, -1, size])], [], dtype, dims), dims };
}
