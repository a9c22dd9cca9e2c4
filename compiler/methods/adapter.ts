import { PeftcError } from "../errors";
import type { AdapterMethod } from "../dsl/adapter";
import type { MethodContext, PlannedMethod } from "./method-context";

// Scaffold: being written; replaced by the real rewrite.
export function planAdapter(method: AdapterMethod, context: MethodContext): PlannedMethod {
  void context;
  throw new PeftcError("E_SPEC_MODEL", `${method.method} is not built yet.`);
}
