import { PeftcError } from "../errors";
import { GradBuilder } from "../autodiff/grad-builder";
import { attr } from "../ir/attribute";
import type { Graph } from "../ir/graph";
import { inferShapes } from "../ir/infer";
import type { Model } from "../ir/model";
import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";

/** A Slice end past any real length: Slice clamps it to the dim. */
const TO_END = Number.MAX_SAFE_INTEGER;

/** Graph inputs that index the token sequence and so must cover the virtual tokens too. */
export interface SequenceInputs {
  inputIds: Value;
  attentionMask: Value | undefined;
  positionIds: Value | undefined;
  tokenTypeIds: Value | undefined;
}

/** Finds the sequence inputs by their Hugging Face names. */
export function sequenceInputs(graph: Graph): SequenceInputs {
  const input = (name: string): Value | undefined => graph.inputs.find((value) => value.name === name);
  return { inputIds: input("input_ids")!, attentionMask: input("attention_mask"), positionIds: input("position_ids"), tokenTypeIds: input("token_type_ids") };
}

/** Values the rewrite leaves for the loss. */
export interface PrependedSequence {
  /**
   * Logits [batch, sequence, vocab] of the position before each real token:
   * the last virtual token, then the real tokens but the last. A causal LM
   * loss reads them unshifted against the labels, so the first real token
   * is a target, as in PEFT. Null without a rank-3 `logits` output or in a
   * cached graph.
   */
  precedingLogits: Value | null;
}

/**
 * Prepends `tokens` virtual tokens with embeddings `prompt` [tokens, hidden]
 * to the output of the token-embedding Gather, before any scaling or
 * position add that follows it, as PEFT prepends to inputs_embeds.
 *
 * The rest of the graph then works on tokens + sequence positions, padded
 * as PEFT pads them. Every other reader of `input_ids` gets the ids with pad
 * id 0 in front, since only their shape matters. `attention_mask` gets ones
 * in front, `token_type_ids` zeros, and `position_ids` gets 0..tokens-1 in
 * front and is shifted by `tokens`. The `logits`
 * output keeps [batch, sequence, vocab]: the last `sequence` positions.
 * Other outputs, such as an encoder's last_hidden_state, keep the virtual
 * positions in front, and a classifier that pools position 0 (BERT) pools
 * the first virtual token, as PEFT's prompt tuning does.
 *
 * In a cached graph (infer.onnx) the virtual tokens go in at prefill only,
 * when the past is empty; later steps find them in the cache. The mask a
 * caller passes covers the real tokens (past and current), and the graph
 * always puts `tokens` ones in front, which is what the cache contains after
 * the prefill. Positions from cumsum(mask) - 1 then put the virtual tokens
 * right before the first real token of each row, even a left-padded one.
 */
export function prependVirtualTokens(model: Model, embedding: Node, prompt: Value, tokens: number, cached: boolean): PrependedSequence {
  const graph = model.graph;
  const inputs = sequenceInputs(graph);
  const ids = inputs.inputIds;
  // Every reader but the embedding lookup gets the extended tensors. The readers are listed before any new node reads them.
  const readers = (value: Value | undefined): { node: Node; index: number }[] => (value ? value.uses.filter((use) => use.node !== embedding).map((use) => ({ node: use.node, index: use.index })) : []);
  const idReaders = readers(ids);
  const maskReaders = readers(inputs.attentionMask);
  const positionReaders = readers(inputs.positionIds);
  const typeReaders = readers(inputs.tokenTypeIds);
  const embedded = embedding.outputs[0];
  const embeddedReaders = readers(embedded);
  const logits = graph.outputs.find((output) => output.name === "logits");
  // The rank decides whether the logits are sliced, so a model without declared output types gets them inferred.
  if (logits && logits.type?.kind !== "tensor") inferShapes(model);

  const b = new GradBuilder(graph, model.opsetVersion("") ?? 0, "/prompt_tuning");
  const idsShape = b.shape(ids);
  const batch = b.op("Gather", [idsShape, b.ints([0])]);
  const sequence = b.op("Gather", [idsShape, b.ints([1])]);
  const all = b.ints([tokens]);
  // Virtual tokens this run adds: all of them, or in a cached graph none once the cache contains them.
  const added = cached ? b.op("Mul", [all, b.op("Cast", [b.op("Equal", [pastLength(graph, b), b.intScalar(0)])], [attr.int("to", DataType.INT64)])]) : all;

  const hidden = b.op("Gather", [b.shape(prompt), b.ints([1])]);
  const virtual = b.op("Expand", [b.unsqueeze(prompt, [0]), b.op("Concat", [batch, all, hidden], [attr.int("axis", 0)])]);
  const addedVirtual = cached ? b.op("Slice", [virtual, b.ints([0]), added, b.ints([1])]) : virtual;
  const extended = b.op("Concat", [addedVirtual, embedded], [attr.int("axis", 1)]);
  for (const use of embeddedReaders) use.node.setInput(use.index, extended);

  const front = (value: Value, count: Value, fill: number): Value => {
    const dtype = b.dtype(value);
    const filled = b.op("ConstantOfShape", [b.op("Concat", [batch, count], [attr.int("axis", 0)])], [attr.tensor("value", filledTensor(dtype, fill))]);
    return b.op("Concat", [filled, value], [attr.int("axis", 1)]);
  };
  // NOTE: a graph that reads id values besides the lookup (a mask built from input_ids != pad id) reads the pad id 0 at the
  // virtual positions. The exports checked (the GPT-2, LLaMA and BERT fixtures, aidreams260K) read only the shape.
  const paddedIds = front(ids, added, 0);
  for (const use of idReaders) use.node.setInput(use.index, paddedIds);
  if (inputs.attentionMask) {
    const mask = front(inputs.attentionMask, all, 1);
    for (const use of maskReaders) use.node.setInput(use.index, mask);
  }
  if (inputs.tokenTypeIds) {
    const types = front(inputs.tokenTypeIds, added, 0);
    for (const use of typeReaders) use.node.setInput(use.index, types);
  }
  if (inputs.positionIds) {
    const positions = shiftedPositions(b, inputs.positionIds, batch, tokens, added);
    for (const use of positionReaders) use.node.setInput(use.index, positions);
  }
  if (!logits || b.rank(logits) !== 3) return { precedingLogits: null };

  // Real-token logits are the last `sequence` positions, in a prefill and in a cached step alike.
  const real = b.op("Slice", [logits, b.op("Neg", [sequence]), b.ints([TO_END]), b.ints([1])]);
  graph.swapNames(logits, real);
  real.type = logits.type;
  graph.outputs[graph.outputs.indexOf(logits)] = real;
  if (cached) return { precedingLogits: null };
  const preceding = b.op("Slice", [logits, b.op("Sub", [b.op("Neg", [sequence]), b.ints([1])]), b.ints([-1]), b.ints([1])]);
  return { precedingLogits: b.typed(preceding, logits) };
}

/**
 * Past length of a cached graph: dim 2 of the first `past_key_values.N.key`
 * input [batch, kv_heads, past_sequence, head_dim]. It counts the virtual
 * tokens once the prefill stored them.
 */
function pastLength(graph: Graph, b: GradBuilder): Value {
  const pastKey = graph.inputs.find((input) => /^past_key_values\.\d+\.key$/.test(input.name));
  if (!pastKey) {
    throw new PeftcError(
      "E_SPEC_MODEL",
      `prompt tuning in infer.onnx needs a cache input named past_key_values.N.key [batch, kv_heads, past_sequence, head_dim] to tell the prefill from later steps; the model's inputs are ${graph.inputs.map((input) => input.name).join(", ")}. Export the model without a cache, or with Optimum's cache names.`,
    );
  }
  return b.op("Gather", [b.shape(pastKey), b.intScalar(2)]);
}

/** Positions 0..tokens-1 of the added virtual tokens, then the caller's positions shifted by `tokens`. */
function shiftedPositions(b: GradBuilder, positions: Value, batch: Value, tokens: number, added: Value): Value {
  const dtype = b.dtype(positions);
  const range = b.op("Cast", [b.op("Range", [b.intScalar(0), b.intScalar(tokens), b.intScalar(1)])], [attr.int("to", dtype)]);
  const virtual = b.op("Expand", [b.unsqueeze(range, [0]), b.op("Concat", [batch, b.ints([tokens])], [attr.int("axis", 0)])]);
  const addedPositions = b.op("Slice", [virtual, b.ints([0]), added, b.ints([1])]);
  const shifted = b.op("Add", [positions, b.op("Cast", [b.intScalar(tokens)], [attr.int("to", dtype)])]);
  return b.op("Concat", [addedPositions, shifted], [attr.int("axis", 1)]);
}

function filledTensor(dtype: DataType, fill: number): Tensor {
  if (dtype === DataType.INT64) return Tensor.fromArray("fill", dtype, [1], BigInt64Array.of(BigInt(fill)));
  if (dtype === DataType.INT32) return Tensor.fromArray("fill", dtype, [1], Int32Array.of(fill));
  return Tensor.fromArray("fill", dtype, [1], Float32Array.of(fill));
}
