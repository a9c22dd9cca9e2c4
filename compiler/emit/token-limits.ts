import type { PromptTuningMethod } from "../dsl/prompt-tuning";
import type { Spec } from "../dsl/spec";
import type { Discovery } from "../match/discover";

/**
 * The token ids and lengths a model takes, recorded in the manifest so
 * the runtime can reject a bad row or prompt before a run. Out-of-range
 * Gather indices fail in onnxruntime's CPU kernels with a bare index error,
 * and read whatever lies past the table on WebGPU.
 */
export interface TokenLimits {
  /** Row count of the token embedding table, which token ids and token labels must be below. Null where discovery found no token embedding. */
  vocabSize: number | null;
  /**
   * Count of real tokens one sequence may contain, prompt and generated ones together:
   * the rows of a learned position table (GPT-2's wpe), less the virtual
   * tokens of a prompt tuning, which take the first positions. Null for
   * models without such a table (rotary or ALiBi positions).
   */
  maxTokens: number | null;
}

/** Reads the limits from the discovered embedding tables and the spec's prompt tuning. */
export function tokenLimits(discovery: Discovery, spec: Spec | null): TokenLimits {
  const table = (role: string): number | null => {
    const module = discovery.modules.find((candidate) => candidate.role === role && candidate.weight?.shape.length === 2);
    const rows = module?.weight?.shape[0];
    return typeof rows === "number" ? rows : null;
  };
  const positions = table("embed.positions");
  const prompt = spec?.methods.find((method): method is PromptTuningMethod => method.method === "prompt");
  return { vocabSize: table("embed.tokens"), maxTokens: positions === null ? null : positions - (prompt?.virtualTokens ?? 0) };
}
