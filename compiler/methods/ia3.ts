import { PeftcError } from "../errors";
import type { Ia3Method } from "../dsl/ia3";
import type { MethodContext, PlannedMethod } from "./method-context";

// Scaffold: being written; replaced by the real rewrite.
export function planIa3(method: Ia3Method, context: MethodContext): PlannedMethod {
  void context;
  throw new PeftcError("E_SPEC_MODEL", `${method.method} is not built yet.`);
}
