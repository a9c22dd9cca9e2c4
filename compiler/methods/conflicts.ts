import { formatSite } from "../dsl/site";
import { SpecError } from "../dsl/spec-error";
import type { Claim } from "./method-context";

/**
 * Rejects two methods that claim the same place of the model, such as two
 * serial adapters after one sublayer or two prompt tunings. Methods that
 * change different things of one module (LoRA beside a linear layer and
 * (IA)3 scaling its output) compose, so they claim different keys.
 */
export function checkClaims(claims: readonly Claim[]): void {
  const seen = new Map<string, Claim>();
  for (const claim of claims) {
    const earlier = seen.get(claim.key);
    if (earlier) {
      const where = earlier.site ? ` at ${formatSite(earlier.site)}` : "";
      throw new SpecError(
        "E_SPEC_MODEL",
        `${claim.description} cannot share ${claim.key} with ${earlier.description}${where}: both change the same place of the model. Keep one of them, or, where both methods take layers or targets, make their selections disjoint.`,
        claim.site,
      );
    }
    seen.set(claim.key, claim);
  }
}
