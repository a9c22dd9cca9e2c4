import { PeftcError } from "../errors";
import { GradBuilder } from "../autodiff/grad-builder";
import { attr } from "../ir/attribute";
import { eliminateDeadCode } from "../ir/dead-code";
import type { Model } from "../ir/model";
import type { Node } from "../ir/node";
import { tensorType } from "../ir/types";
import type { Value } from "../ir/value";
import type { Discovery } from "../match/discover";
import type { AttentionBlock } from "../match/attention";
import { constantTensor } from "../match/graph-walk";
import { DataType } from "../onnx/dtype";
import { buildCacheContext } from "./cache-inputs";
import { replaceRotaryTables } from "./rotary-tables";

/** Hugging Face Optimum's cache input and output names of layer `layer`. */
export function cacheNames(layer: number): { pastKey: string; pastValue: string; presentKey: string; presentValue: string } {
  return {
    pastKey: `past_key_values.${layer}.key`,
    pastValue: `past_key_values.${layer}.value`,
    presentKey: `present.${layer}.key`,
    presentValue: `present.${layer}.value`,
  };
}

/** True when the model already reads a KV cache (Optimum's with-past exports, onnxruntime-genai models). */
export function hasKvCache(model: Model): boolean {
  return model.graph.inputs.some((input) => /^past_key_values\.\d+\.(key|value)$|^past_\d+$|^past_key_\d+$/.test(input.name));
}

/**
 * Rewrites a decoder exported without a cache into one that reads and
 * writes it, with Optimum's I/O: inputs `input_ids`, `attention_mask` over
 * past and current tokens, `past_key_values.N.key` / `.value` of shape
 * [batch, kv_heads, past_sequence, head_dim]; outputs `logits` and
 * `present.N.key` / `.value`. Per layer, the keys (after rotary, before
 * grouped-query heads are repeated) and the values are concatenated after
 * the past ones, and the scores get a mask offset by the past length. Rotary
 * tables and learned positions are recomputed for per-row positions. A past
 * of length 0 is the prefill step. `fuseAttentionCores` can then swap the
 * decomposed cores for a fused kernel.
 */
export function addKvCache(model: Model, discovery: Discovery): void {
  const graph = model.graph;
  const inputIds = graph.inputs.find((input) => input.name === "input_ids");
  const attentionMask = graph.inputs.find((input) => input.name === "attention_mask");
  if (!inputIds || !attentionMask) {
    throw new PeftcError("E_UNKNOWN_DOMAIN", "KV cache: the model needs inputs named input_ids and attention_mask, as Hugging Face exports have.");
  }
  const blocks = discovery.attention.filter((block) => block.core.form === "decomposed");
  if (blocks.length === 0 || blocks.length !== discovery.attention.length) {
    throw new PeftcError("E_UNKNOWN_DOMAIN", `KV cache: found ${discovery.attention.length} attention blocks, ${blocks.length} of them decomposed (MatMul, Softmax, MatMul); the rewrite needs every block decomposed. Export the model with its cache instead.`);
  }
  const logits = graph.outputs.find((output) => output.name === "logits") ?? graph.outputs[0];
  const dtype = logits.type?.kind === "tensor" ? logits.type.elemType : DataType.FLOAT;
  const b = new GradBuilder(graph, model.opsetVersion("") ?? 0, "/kv_cache");
  const context = buildCacheContext(b, inputIds, attentionMask, dtype);
  attentionMask.type = tensorType(DataType.INT64, ["batch", "total_sequence"]);

  const byName = new Map(graph.nodes.map((node) => [node.name, node]));
  const presents: Value[] = [];
  blocks.forEach((block, index) => {
    const layer = block.layer ?? index;
    presents.push(...cacheLayer(b, block, layer, byName, context.mask, dtype));
  });

  const rotary = blocks.find((block) => block.rotary)?.rotary;
  if (rotary) replaceRotaryTables(b, graph, context.positions, rotary.form === "rotate_half" ? "rotate_half" : "interleaved");
  const positions = discovery.modules.find((module) => module.role === "embed.positions");
  if (positions && positions.node.opType === "Gather") positions.node.setInput(1, context.positions);

  graph.outputs.length = 0;
  graph.addOutput(logits);
  for (const present of presents) graph.addOutput(present);
  eliminateDeadCode(graph);
}

/** Adds the cache of one layer and returns its present key and value. */
function cacheLayer(b: GradBuilder, block: AttentionBlock, layer: number, byName: Map<string, Node>, mask: Value, dtype: DataType): Value[] {
  const scores = byName.get(block.core.scores!);
  const softmax = byName.get(block.core.softmax!);
  const context = byName.get(block.core.context!);
  if (!scores || !softmax || !context || block.kvHeads === null || block.headDim === null) {
    throw new PeftcError("E_UNKNOWN_DOMAIN", `KV cache: attention block of layer ${layer} lacks its scores, softmax or context node, or its head counts.`);
  }
  const keys = kvHeadValue(b, scores, true, layer);
  const values = kvHeadValue(b, context, false, layer);
  const names = cacheNames(layer);
  const pastShape = ["batch", block.kvHeads, "past_sequence", block.headDim];
  const pastKey = b.graph.addInput(names.pastKey, tensorType(dtype, pastShape));
  const pastValue = b.graph.addInput(names.pastValue, tensorType(dtype, pastShape));
  const fullKeys = withPast(b, keys, pastKey, names.presentKey);
  const fullValues = withPast(b, values, pastValue, names.presentValue);
  replaceMask(softmax, scores, mask, layer);
  return [fullKeys, fullValues];
}

/** Puts the past before the current keys or values along the sequence axis, and moves every reader of the current ones to the result. */
function withPast(b: GradBuilder, current: Value, past: Value, presentName: string): Value {
  const readers = [...current.uses];
  const node = b.graph.addNode({ opType: "Concat", name: `/kv_cache/${presentName}`, inputs: [past, current], outputs: [presentName], attributes: [attr.int("axis", 2)] });
  const full = node.outputs[0];
  if (full.name !== presentName) throw new PeftcError("E_IR_INVARIANT", `KV cache: the model already has a value named "${presentName}". Rename it in the model.`);
  full.type = tensorType(past.type?.kind === "tensor" ? past.type.elemType : DataType.FLOAT, [...((past.type?.kind === "tensor" && past.type.shape) || [])].map((dim, i) => (i === 2 ? "total_sequence" : dim)));
  for (const use of readers) use.node.setInput(use.index, full);
  return full;
}

/**
 * Finds the keys (operand 1 of the scores MatMul) or values (operand 1 of
 * the context MatMul) with one entry per key/value head, [batch, kv_heads,
 * sequence, head_dim]. Prefix tuning uses it too, so its prefixes sit
 * where the cache does; on a cached graph it returns the present keys or
 * values. The walk goes back through the Transpose that turns
 * keys to [batch, heads, head_dim, sequence], and through the Unsqueeze,
 * Expand, Reshape with which grouped-query attention repeats heads. Keys transposed straight from
 * [batch, sequence, heads, head_dim] (perm [0, 2, 3, 1], PyTorch's GPT-2)
 * are split into two transposes, so the cache sits between them.
 */
export function kvHeadValue(b: GradBuilder, matMul: Node, isKey: boolean, layer: number): Value {
  let value = matMul.inputs[1]!;
  if (isKey) {
    const problem = keyLayoutProblem(matMul);
    if (problem !== null) throw new PeftcError("E_UNKNOWN_DOMAIN", `KV cache: layer ${layer}: ${problem}.`);
    const transpose = value.producer!;
    if ((transpose.getInts("perm") ?? []).join(",") === "0,2,3,1") {
      const headMajor = b.op("Transpose", [transpose.inputs[0]!], [attr.ints("perm", [0, 2, 1, 3])]);
      const keysLast = b.op("Transpose", [headMajor], [attr.ints("perm", [0, 1, 3, 2])]);
      moveNodeBefore(b, matMul, [headMajor, keysLast]);
      matMul.setInput(1, keysLast);
      return headMajor;
    }
    value = transpose.inputs[0]!;
  }
  const reshape = value.producer;
  const expand = reshape?.opType === "Reshape" ? reshape.inputs[0]?.producer : undefined;
  const unsqueeze = expand?.opType === "Expand" ? expand.inputs[0]?.producer : undefined;
  if (reshape && expand && unsqueeze?.opType === "Unsqueeze") return unsqueeze.inputs[0]!;
  return value;
}

/**
 * Returns why the keys of a scores MatMul are in a layout the cache and
 * prefix rewrites do not know. Keys read through a Transpose with perm
 * [0, 1, 3, 2] or [0, 2, 3, 1] give null. Changes nothing.
 */
export function keyLayoutProblem(scores: Node): string | null {
  const transpose = scores.inputs[1]?.producer;
  if (transpose?.opType !== "Transpose") return `the keys reach the scores through ${transpose?.opType ?? "a graph input"}, not a Transpose; this key layout is not supported`;
  const perm = (transpose.getInts("perm") ?? []).join(",");
  if (perm !== "0,1,3,2" && perm !== "0,2,3,1") return `the keys reach the scores through a Transpose with perm [${perm}], a layout this rewrite does not know`;
  return null;
}

/** Moves the producers of `values`, which the builder appended at the end, to just before `anchor`, keeping their order. */
function moveNodeBefore(b: GradBuilder, anchor: Node, values: Value[]): void {
  const nodes = b.graph.nodes;
  for (const value of values) {
    const node = value.producer!;
    nodes.splice(nodes.indexOf(node), 1);
    nodes.splice(nodes.indexOf(anchor), 0, node);
  }
}

/**
 * Replaces each decomposed attention core of a cached graph (from
 * `addKvCache`, after any prefixes were added) with onnxruntime's
 * com.microsoft::MultiHeadAttention kernel, fed the same cached keys and
 * values and the same mask.
 */
export function fuseAttentionCores(model: Model, discovery: Discovery): void {
  const b = new GradBuilder(model.graph, model.opsetVersion("") ?? 0, "/fused_attention");
  const byName = new Map(model.graph.nodes.map((node) => [node.name, node]));
  discovery.attention.forEach((block, index) => fuseCore(b, block, block.layer ?? index, byName));
  if (!model.opsetImports.has("com.microsoft")) model.opsetImports.set("com.microsoft", 1);
  eliminateDeadCode(model.graph);
}

/**
 * Replaces a decomposed core with MultiHeadAttention. The query goes in as
 * [batch, sequence, heads · head_dim], the cached and repeated keys and
 * values as [batch, heads, total, head_dim], and the mask as
 * attention_bias. The scale is read from the Div or Mul that scaled the
 * scores. The
 * output is brought back to [batch, heads, sequence, head_dim] for the
 * nodes that merged the heads.
 */
function fuseCore(b: GradBuilder, block: AttentionBlock, layer: number, byName: Map<string, Node>): void {
  const scores = byName.get(block.core.scores!)!;
  const softmax = byName.get(block.core.softmax!)!;
  const context = byName.get(block.core.context!)!;
  const heads = block.heads;
  const headDim = block.headDim;
  const keysTransposed = scores.inputs[1]!.producer;
  if (heads === null || headDim === null || keysTransposed?.opType !== "Transpose") {
    throw new PeftcError("E_UNKNOWN_DOMAIN", `fused attention: layer ${layer} lacks head counts or a key Transpose before its scores.`);
  }
  const add = softmax.inputs[0]!.producer!;
  const maskSide = add.inputs.findIndex((input) => input !== undefined && !dependsOn(input, scores));
  const mask = add.inputs[maskSide]!;
  const scaled = add.inputs[1 - maskSide]!;
  let scale = 1;
  const scaling = scaled.producer;
  if (scaling && scaling !== scores) {
    const constant = scaling.inputs[1] ? constantScalar(scaling.inputs[1]) : undefined;
    if (constant === undefined || (scaling.opType !== "Div" && scaling.opType !== "Mul")) {
      throw new PeftcError("E_UNKNOWN_DOMAIN", `fused attention: layer ${layer} scales its scores with ${scaling.opType} "${scaling.name}", not a Div or Mul by a constant.`);
    }
    scale = scaling.opType === "Div" ? 1 / constant : constant;
  }
  const query = b.op("Reshape", [b.op("Transpose", [scores.inputs[0]!], [attr.ints("perm", [0, 2, 1, 3])]), b.ints([0, 0, heads * headDim])]);
  const fused = b.op("MultiHeadAttention", [query, keysTransposed.inputs[0]!, context.inputs[1]!, undefined, undefined, mask], [attr.int("num_heads", heads), attr.float("scale", scale)], "com.microsoft");
  const perHead = b.op("Transpose", [b.op("Reshape", [fused, b.ints([0, 0, heads, headDim])])], [attr.ints("perm", [0, 2, 1, 3])]);
  const nodes = b.graph.nodes;
  // The new nodes read values made before the core and feed the nodes after it, so they take the core's place in the list.
  const moved = [query.producer!.inputs[0]!, query, fused, perHead.producer!.inputs[0]!, perHead].map((value) => value.producer!);
  for (const node of moved) nodes.splice(nodes.indexOf(node), 1);
  nodes.splice(nodes.indexOf(context) + 1, 0, ...moved);
  context.outputs[0].replaceAllUsesWith(perHead);
}

function constantScalar(value: Value): number | undefined {
  const tensor = constantTensor(value);
  if (!tensor || tensor.size !== 1) return undefined;
  return Number((tensor.data() as ArrayLike<number>)[0]);
}

/** Replaces the mask the scores get before the softmax with the cache-aware one. */
function replaceMask(softmax: Node, scores: Node, mask: Value, layer: number): void {
  const add = softmax.inputs[0]?.producer;
  if (add?.opType !== "Add") {
    throw new PeftcError("E_UNKNOWN_DOMAIN", `KV cache: layer ${layer}: the softmax reads ${add?.opType ?? "a graph input"}, not the Add of scores and mask that this rewrite replaces.`);
  }
  const scoreSide = add.inputs.findIndex((input) => input !== undefined && dependsOn(input, scores));
  if (scoreSide < 0) throw new PeftcError("E_UNKNOWN_DOMAIN", `KV cache: layer ${layer}: the Add before the softmax does not read the scores.`);
  add.setInput(1 - scoreSide, mask);
}

/** True when `value` is computed from `node` through at most four first-operand steps (the scores through a scale). */
export function dependsOn(value: Value, node: Node): boolean {
  let current: Value | undefined = value;
  for (let steps = 0; current && steps < 4; steps++) {
    const producer: Node | undefined = current.producer;
    if (!producer) return false;
    if (producer === node) return true;
    current = producer.inputs[0];
  }
  return false;
}
