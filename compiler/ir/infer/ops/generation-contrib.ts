import { DataType } from "../../../onnx/dtype";
import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { subtractDims } from "../dims";
import { RuleDefinition } from "../registry";
import { sizeFromInput } from "./common";

/**
 * onnxruntime's generation loops (com.microsoft BeamSearch and
 * GreedySearch). Their decoder (and encoder) subgraphs are inferred with the
 * input types they declare, since the loop feeds them itself. Output sizes
 * come from the max_length, num_beams and num_return_sequences inputs,
 * known only when those are constants.
 */

const MICROSOFT = "com.microsoft";

/** Infers the generation subgraphs and returns the vocabulary size from the decoder's first output (logits). */
function inferSubgraphs(ctx: InferenceContext): Dim {
  const decoder = ctx.graph("decoder");
  if (!decoder) ctx.fail('attribute "decoder" is missing', "Add the decoder subgraph to the node.");
  const encoder = ctx.graph("encoder");
  if (encoder) ctx.inferSubgraph(encoder, []);
  const logits = ctx.inferSubgraph(decoder, [])[0]?.type;
  const fromLogits = logits?.kind === "tensor" ? (logits.shape?.[logits.shape.length - 1] ?? null) : null;
  const vocabulary = ctx.int("vocab_size", -1);
  return vocabulary > 0 ? vocabulary : fromLogits;
}

/**
 * BeamSearch: sequences [batch, num_return_sequences, max_length] of the
 * input_ids type, sequences_scores [batch, num_return_sequences] and scores
 * [max_length - sequence, batch, num_beams, vocabulary] of the
 * length_penalty type (float).
 */
function beamSearchRule(ctx: InferenceContext): void {
  const vocabulary = inferSubgraphs(ctx);
  const ids = ctx.input(0);
  const batch = ids.shape?.[0] ?? null;
  const sequence = ids.shape?.[1] ?? null;
  const maxLength = sizeFromInput(ctx, 1) ?? null;
  const beams = sizeFromInput(ctx, 3) ?? null;
  const returned = sizeFromInput(ctx, 4) ?? null;
  const scoreType = ctx.optionalInput(5)?.elemType ?? DataType.FLOAT;
  ctx.setOutput(0, ids.elemType, [batch, returned, maxLength]);
  ctx.setOutput(1, scoreType, [batch, returned]);
  ctx.setOutput(2, scoreType, [subtractDims(maxLength, sequence), batch, beams, vocabulary]);
}

/** GreedySearch: sequences [batch, max_length] of the input_ids type. */
function greedySearchRule(ctx: InferenceContext): void {
  inferSubgraphs(ctx);
  const ids = ctx.input(0);
  ctx.setOutput(0, ids.elemType, [ids.shape?.[0] ?? null, sizeFromInput(ctx, 1) ?? null]);
}

export const generationContribRules: RuleDefinition[] = [
  { opType: "BeamSearch", domain: MICROSOFT, since: 1, infer: beamSearchRule },
  { opType: "GreedySearch", domain: MICROSOFT, since: 1, infer: greedySearchRule },
];
