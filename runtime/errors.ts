import { type ErrorCode, PeftcError } from "../compiler/errors";

/** Error codes of the training runtime. */
export type RuntimeErrorCode = Extract<ErrorCode, "E_DATASET" | "E_TRAINING" | "E_CHECKPOINT">;

/**
 * A PeftcError raised by the data loader, the trainer or the checkpoint
 * reader, so the CLI reports it and exits with status 2 like compiler errors.
 */
export class RuntimeInputError extends PeftcError {
  constructor(code: RuntimeErrorCode, message: string, details: Record<string, string | number | undefined> = {}) {
    super(code, message, details);
  }
}
