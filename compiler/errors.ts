/**
 * Error codes shared by the compiler and the CLI. Tests assert codes, not
 * wording, so messages can improve without breaking them.
 */
export type ErrorCode =
  | "E_FILE_NOT_FOUND"
  | "E_ONNX_PARSE"
  | "E_ONNX_INVALID"
  | "E_EXTERNAL_DATA_PATH"
  | "E_EXTERNAL_DATA_MISSING"
  | "E_EXTERNAL_DATA_RANGE"
  | "E_TENSOR_DATA"
  | "E_IR_INVARIANT"
  | "E_IR_CYCLE"
  | "E_IR_UNDEFINED_VALUE"
  | "E_UNKNOWN_DOMAIN"
  | "E_SHAPE_INFERENCE"
  | "E_OUTPUT_PATH"
  | "E_SPEC_LOAD"
  | "E_SPEC_TYPE"
  | "E_SPEC_EVAL"
  | "E_SPEC_OPTION"
  | "E_SPEC_SELECTOR"
  | "E_SPEC_MODEL"
  | "E_SAFETENSORS"
  | "E_ADAPTER"
  | "E_ARTIFACT"
  | "E_TRAINING_GRAPH"
  | "E_DEVICE"
  | "E_TOKENIZER"
  | "E_GENERATE"
  | "E_DATASET"
  | "E_TRAINING"
  | "E_CHECKPOINT";

/** An error a user can act on: it names the file, node or value at fault and what to do. */
export class PeftcError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, string | number | undefined> = {},
  ) {
    super(message);
    this.name = "PeftcError";
  }
}

export function isPeftcError(error: unknown): error is PeftcError {
  return error instanceof PeftcError;
}
