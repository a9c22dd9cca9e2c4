import type { LoraMethod } from "../dsl/lora";
import { globToRegExp } from "../dsl/glob";
import { type SpecWarning, resolveSelection } from "../dsl/match";
import { formatSite } from "../dsl/site";
import { SpecError } from "../dsl/spec-error";
import type { Target } from "../dsl/targets";

/** One LoRA branch to insert: a target with its rank, alpha and scale resolved. */
export interface LoraPlan {
  target: Target;
  rank: number;
  alpha: number;
  rsLora: boolean;
  scale: number;
  dropout: number;
  init: LoraMethod["init"];
  /** Whether a learned per-token gate scales the update. */
  gate: boolean;
  /** The method that asked for it; null when the plan comes from an adapter file. */
  method: LoraMethod | null;
}

/** Returns the scale of the LoRA update: alpha / r, or alpha / sqrt(r) for rank-stabilized LoRA. */
export function loraScale(alpha: number, rank: number, rsLora: boolean): number {
  return rsLora ? alpha / Math.sqrt(rank) : alpha / rank;
}

/**
 * Resolves one `lora(...)` method against a model's targets: selects the
 * linear layers, applies rankPattern and alphaPattern, and rejects a rank
 * larger than the layer. Pattern keys that match no selected module are
 * warnings, because PEFT silently ignores them and that hides typos.
 */
export function planLora(method: LoraMethod, targets: readonly Target[]): { plans: LoraPlan[]; warnings: SpecWarning[] } {
  const selection = resolveSelection(method.targets, targets, "lora targets", ["linear"]);
  const warnings = [...selection.warnings];
  const rankKeys = [...method.rankPattern.keys()].map((key) => ({ key, pattern: globToRegExp(key) }));
  const alphaKeys = [...method.alphaPattern.keys()].map((key) => ({ key, pattern: globToRegExp(key) }));
  const usedKeys = new Set<string>();
  const plans = selection.targets.map((target) => {
    const rankKey = rankKeys.find((entry) => entry.pattern.test(target.path))?.key;
    const alphaKey = alphaKeys.find((entry) => entry.pattern.test(target.path))?.key;
    if (rankKey !== undefined) usedKeys.add(`rankPattern:${rankKey}`);
    if (alphaKey !== undefined) usedKeys.add(`alphaPattern:${alphaKey}`);
    const rank = rankKey === undefined ? method.rank : method.rankPattern.get(rankKey)!;
    const alpha = alphaKey === undefined ? method.alpha : method.alphaPattern.get(alphaKey)!;
    const limit = Math.min(target.inFeatures ?? Infinity, target.outFeatures ?? Infinity);
    if (rank > limit) {
      const option = rankKey === undefined ? ["rank"] : ["rankPattern", rankKey];
      throw new SpecError(
        "E_SPEC_MODEL",
        `lora: option "${option.join(".")}" is ${rank}, larger than ${target.path} allows: its weight is ${target.inFeatures} → ${target.outFeatures}, so the rank can be at most ${limit}. Lower the rank, or exclude the module with rankPattern or .except(...).`,
        method.site,
        option,
      );
    }
    return { target, rank, alpha, rsLora: method.rsLora, scale: loraScale(alpha, rank, method.rsLora), dropout: method.dropout, init: method.init, gate: method.gate, method };
  });
  for (const [option, keys] of [["rankPattern", rankKeys], ["alphaPattern", alphaKeys]] as const) {
    for (const { key } of keys) {
      if (usedKeys.has(`${option}:${key}`)) continue;
      warnings.push({ message: `lora: ${option} key "${key}" matches none of the ${plans.length} selected modules, so it changes nothing.`, site: method.site });
    }
  }
  return { plans, warnings };
}

/**
 * Rejects two LoRA branches on one module: the same target twice, or a
 * fused projection as a whole and one of its parts. Different parts of one
 * fused projection may come from different methods.
 */
export function checkLoraConflicts(plans: readonly LoraPlan[]): void {
  const seen = new Map<string, LoraPlan>();
  const wholes = new Map<unknown, LoraPlan>();
  const parts = new Map<unknown, LoraPlan>();
  for (const plan of plans) {
    const { target } = plan;
    const clash = seen.get(target.path) ?? (target.part === undefined ? parts.get(target.module) : wholes.get(target.module));
    if (clash) {
      const where = clash.method?.site ? ` at ${formatSite(clash.method.site)}` : "";
      const what = clash.target.path === target.path ? target.path : `${target.path} (part of ${target.module.path}, also adapted as ${clash.target.path})`;
      throw new SpecError(
        "E_SPEC_MODEL",
        `lora: ${what} is already adapted by the lora method${where}; a module takes one LoRA branch. Narrow one of the selectors with .except(...).`,
        plan.method?.site,
        ["targets"],
      );
    }
    seen.set(target.path, plan);
    (target.part === undefined ? wholes : parts).set(target.module, plan);
  }
}
