import * as ort from "onnxruntime-node";
import { PeftcError } from "../../../compiler/errors";
import { feedsFor } from "../../../runtime/trainer/artifacts";

type Metadata = ort.InferenceSession.ValueMetadata;

/** The parts of a session that feedsFor reads, for graphs no fixture has. */
function fakeSession(inputs: { name: string; type: ort.Tensor.Type; shape: (number | string)[] }[]): ort.InferenceSession {
  const inputMetadata: Metadata[] = inputs.map((input) => ({ ...input, isTensor: true }) as Metadata);
  return { inputNames: inputs.map((input) => input.name), inputMetadata } as unknown as ort.InferenceSession;
}

const int64Matrix = (rows: number[][]): ort.Tensor => new ort.Tensor("int64", BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);
const numbers = (tensor: ort.Tensor): number[] => Array.from(tensor.data as ArrayLike<number | bigint>, Number);

// Row 0 is right-padded, row 1 left-padded.
const batch = {
  input_ids: int64Matrix([[5, 6, 7, 0], [0, 8, 9, 10]]),
  attention_mask: int64Matrix([[1, 1, 1, 0], [0, 1, 1, 1]]),
  labels: int64Matrix([[5, 6, 7, -100], [-100, 8, 9, 10]]),
};

function errorOf(action: () => unknown): PeftcError {
  try {
    action();
  } catch (error) {
    if (error instanceof PeftcError) return error;
    throw error;
  }
  throw new Error("expected a PeftcError");
}

describe("feedsFor", () => {
  test("fills token_type_ids with zeros", () => {
    const session = fakeSession([{ name: "input_ids", type: "int64", shape: ["batch", "sequence"] }, { name: "token_type_ids", type: "int64", shape: ["batch", "sequence"] }]);
    const feeds = feedsFor(session, "eval", batch);
    expect(feeds.token_type_ids.dims).toEqual([2, 4]);
    expect(feeds.token_type_ids.type).toBe("int64");
    expect(numbers(feeds.token_type_ids)).toEqual(new Array(8).fill(0));
  });

  test("numbers position_ids from the attention mask", () => {
    const session = fakeSession([{ name: "position_ids", type: "int64", shape: ["batch", "sequence"] }]);
    const feeds = feedsFor(session, "train", batch);
    expect(feeds.position_ids.dims).toEqual([2, 4]);
    // cumsum(mask) - 1, clipped at 0: arange on the real tokens of either padding side.
    expect(numbers(feeds.position_ids)).toEqual([0, 1, 2, 2, 0, 0, 1, 2]);
  });

  test("fills position_ids as int32 when declared so", () => {
    const session = fakeSession([{ name: "position_ids", type: "int32", shape: ["batch", "sequence"] }]);
    expect(feedsFor(session, "train", batch).position_ids.type).toBe("int32");
  });

  test("fills an empty cache with the declared dims", () => {
    const session = fakeSession([
      { name: "past_key_values.0.key", type: "float32", shape: ["batch", 4, "past_sequence", 16] },
      { name: "past_key_values.0.value", type: "float16", shape: ["batch_size", 2, "past_seq_len", 8] },
    ]);
    const feeds = feedsFor(session, "grad", batch);
    expect(feeds["past_key_values.0.key"].dims).toEqual([2, 4, 0, 16]);
    expect(feeds["past_key_values.0.key"].type).toBe("float32");
    expect(feeds["past_key_values.0.value"].dims).toEqual([2, 2, 0, 8]);
    expect(feeds["past_key_values.0.value"].type).toBe("float16");
  });

  test("rejects a cache with symbolic head dims", () => {
    const session = fakeSession([{ name: "past_key_values.0.key", type: "float32", shape: ["batch", "heads", "past_sequence", 16] }]);
    const error = errorOf(() => feedsFor(session, "eval", batch));
    expect(error.code).toBe("E_TRAINING");
    expect(error.message).toContain(`eval.onnx input "past_key_values.0.key" is [batch, heads, past_sequence, 16]`);
  });

  test("converts int64 batch inputs to declared int32", () => {
    const session = fakeSession([{ name: "input_ids", type: "int32", shape: ["batch", "sequence"] }, { name: "labels", type: "int64", shape: ["batch", "sequence"] }]);
    const feeds = feedsFor(session, "train", batch);
    expect(feeds.input_ids.type).toBe("int32");
    expect(numbers(feeds.input_ids)).toEqual([5, 6, 7, 0, 0, 8, 9, 10]);
    expect(feeds.labels).toBe(batch.labels);
  });

  test("names an input it cannot fill", () => {
    const session = fakeSession([{ name: "use_cache_branch", type: "bool", shape: [1] }]);
    const error = errorOf(() => feedsFor(session, "train", batch));
    expect(error.code).toBe("E_TRAINING");
    expect(error.message).toContain(`train.onnx takes the input "use_cache_branch", which neither the dataset nor the trainer provides`);
    expect(error.message).toContain("token_type_ids (zeros), position_ids (from attention_mask) and past_key_values.* (an empty cache)");
  });

  test("rejects a missing input of a graph without a batch", () => {
    const session = fakeSession([{ name: "lr", type: "float32", shape: [] }]);
    const error = errorOf(() => feedsFor(session, "apply", {}));
    expect(error.message).toContain(`no value for apply.onnx input "lr"`);
  });

  test("keeps only declared inputs", () => {
    const session = fakeSession([{ name: "input_ids", type: "int64", shape: ["batch", "sequence"] }]);
    expect(Object.keys(feedsFor(session, "eval", batch))).toEqual(["input_ids"]);
  });
});
