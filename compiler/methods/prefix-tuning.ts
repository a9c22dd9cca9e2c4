import { PeftcError } from "../errors";
import type { PrefixTuningMethod } from "../dsl/prefix-tuning";
import type { MethodContext, PlannedMethod } from "./method-context";

// Scaffold: being written; replaced by the real rewrite.
export function planPrefixTuning(method: PrefixTuningMethod, context: MethodContext): PlannedMethod {
  void context;
  throw new PeftcError("E_SPEC_MODEL", `${method.method} is not built yet.`);
}
