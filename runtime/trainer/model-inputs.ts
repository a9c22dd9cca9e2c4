import * as ort from "onnxruntime-node";
import { RuntimeInputError } from "../errors";

/** The inputs a dataset batch gives every training graph. */
export const BATCH_INPUTS = ["input_ids", "attention_mask", "labels"];

/** The model inputs the trainer fills and their values, for error messages. */
const FILLED_INPUTS = "token_type_ids (zeros), position_ids (from attention_mask) and past_key_values.* (an empty cache)";

type TensorMetadata = ort.InferenceSession.TensorValueMetadata;

/**
 * Builds a model input that a batch without a KV cache implies:
 * - `token_type_ids`: zeros [batch, sequence], every token in segment 0.
 * - `position_ids`: cumsum(attention_mask) − 1, clipped at 0, so each row
 *   counts its real tokens from 0. On right-padded rows this equals arange
 *   over the real tokens. Hugging Face's prepare_inputs_for_generation
 *   computes the same cumsum but writes 1 at padding, which the mask hides.
 * - `past_key_values.*`: an empty cache [batch, kv_heads, 0, head_dim],
 *   with the dtype and the fixed dims the graph declares.
 * Any other input raises E_TRAINING naming it and what the trainer fills.
 */
export function fillModelInput(graph: string, input: TensorMetadata, attentionMask: ort.Tensor): ort.Tensor {
  const [batch, sequence] = attentionMask.dims;
  const name = input.name;
  if (name === "token_type_ids") return integerTensor(graph, input, new Array<number>(batch * sequence).fill(0), [batch, sequence]);
  if (name === "position_ids") return integerTensor(graph, input, positionIds(attentionMask), [batch, sequence]);
  if (name.startsWith("past_key_values.")) return emptyCache(graph, input, batch);
  throw new RuntimeInputError(
    "E_TRAINING",
    `${graph}.onnx takes the input "${name}", which neither the dataset nor the trainer provides. The dataset gives ${BATCH_INPUTS.join(", ")}, and the trainer fills ${FILLED_INPUTS}. Export the model without "${name}", or run ${graph}.onnx with your own feeds.`,
    { input: name },
  );
}

/** cumsum(mask) − 1 along each row, clipped at 0 so that left padding gets position 0. */
function positionIds(attentionMask: ort.Tensor): number[] {
  const [batch, sequence] = attentionMask.dims;
  const mask = attentionMask.data as BigInt64Array;
  const positions = new Array<number>(batch * sequence);
  for (let row = 0; row < batch; row++) {
    let seen = 0;
    for (let t = 0; t < sequence; t++) {
      seen += Number(mask[row * sequence + t]);
      positions[row * sequence + t] = Math.max(seen - 1, 0);
    }
  }
  return positions;
}

/** Builds an empty KV cache: the batch dim first, 0 for the one symbolic dim after it (the past sequence), the declared dims elsewhere. */
function emptyCache(graph: string, input: TensorMetadata, batch: number): ort.Tensor {
  const symbolic = input.shape.map((dim, index) => (index > 0 && typeof dim !== "number" ? index : -1)).filter((index) => index >= 0);
  if (input.shape.length < 2 || symbolic.length !== 1) {
    throw new RuntimeInputError(
      "E_TRAINING",
      `${graph}.onnx input "${input.name}" is [${input.shape.join(", ")}], so the trainer cannot tell its past-sequence dim. It fills caches shaped [batch, kv_heads, past_sequence, head_dim] whose dims other than batch and past_sequence are fixed. Export the model with fixed head dims.`,
      { input: input.name },
    );
  }
  const dims = input.shape.map((dim) => dim as number);
  dims[0] = batch;
  dims[symbolic[0]] = 0;
  switch (input.type) {
    case "float32":
      return new ort.Tensor("float32", new Float32Array(0), dims);
    case "float16":
      return new ort.Tensor("float16", new Uint16Array(0), dims);
    default:
      throw new RuntimeInputError("E_TRAINING", `${graph}.onnx input "${input.name}" is ${input.type}, but the trainer fills KV caches of float32 or float16 only.`, { input: input.name });
  }
}

/** Builds an int64 or int32 tensor, as the graph declares the input. */
function integerTensor(graph: string, input: TensorMetadata, values: number[], dims: number[]): ort.Tensor {
  if (input.type === "int64") return new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
  if (input.type === "int32") return new ort.Tensor("int32", Int32Array.from(values), dims);
  throw new RuntimeInputError("E_TRAINING", `${graph}.onnx input "${input.name}" is ${input.type}, but the trainer fills it as int64 or int32 only.`, { input: input.name });
}

/**
 * Converts an int64 batch tensor to int32 when the graph declares int32,
 * as some exports do for input_ids (onnxruntime-genai's, for one). Token
 * ids and mask values are far below 2^31, so the values do not change.
 */
export function matchIntegerType(tensor: ort.Tensor, input: TensorMetadata | undefined): ort.Tensor {
  if (!input || tensor.type !== "int64" || input.type !== "int32") return tensor;
  return new ort.Tensor("int32", Int32Array.from(tensor.data as BigInt64Array, Number), tensor.dims);
}
