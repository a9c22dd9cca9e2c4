import type { LoraMethod } from "../dsl/lora";
import type { SelectiveMethod } from "../dsl/selective";
import type { SpecWarning } from "../dsl/match";
import type { Spec } from "../dsl/spec";
import { type Target, selectionTargets } from "../dsl/targets";
import type { Model } from "../ir/model";
import type { Discovery } from "../match/discover";
import { chooseExisting, unfreezeExisting } from "./freeze";
import { retieHead } from "./retie";
import { type GraphMode, type LoraValues, insertLora } from "./lora";
import { type LoraPlan, checkLoraConflicts, planLora } from "./lora-plan";
import type { LoraRecord, TrainableParameter } from "./parameters";

/** A model rewritten by a spec's methods, with what trains in it. */
export interface PeftGraph {
  model: Model;
  /** Trainable tensors in the order they were added: new ones by method, then unfrozen existing ones. */
  parameters: TrainableParameter[];
  lora: LoraRecord[];
  warnings: SpecWarning[];
}

export interface ApplyOptions {
  mode: GraphMode;
  /** LoRA branches to add besides the spec's, such as those of an adapter file loaded without a spec. */
  extraLora?: LoraPlan[];
  /** Initial LoRA values by target path, replacing the initialisation. */
  initialLora?: LoraValues;
}

/**
 * Applies a spec's methods to `model` in place: plans every method against
 * the discovered modules first, so a selector or option error leaves the
 * model unchanged, then inserts the new tensors and unfreezes the chosen
 * existing ones. Every other tensor stays a frozen initializer.
 */
export function applySpec(model: Model, discovery: Discovery, spec: Spec | null, options: ApplyOptions): PeftGraph {
  const targets: Target[] = selectionTargets(discovery);
  const methods = spec ? spec.methods.filter((method): method is LoraMethod => method.method === "lora") : [];
  const selective = spec ? spec.methods.filter((method): method is SelectiveMethod => method.method !== "lora") : [];
  const plans: LoraPlan[] = [...(options.extraLora ?? [])];
  const warnings: SpecWarning[] = [];
  for (const method of methods) {
    const planned = planLora(method, targets);
    plans.push(...planned.plans);
    warnings.push(...planned.warnings);
  }
  checkLoraConflicts(plans);
  const existing = chooseExisting(targets, methods, plans, selective);
  warnings.push(...existing.warnings);

  const inserted = insertLora(model, plans, { mode: options.mode, seed: spec?.seed ?? 0, initial: options.initialLora });
  warnings.push(...inserted.warnings);
  // Before unfreezing, while the embedding still has its data as an initializer.
  warnings.push(...retieHead(model, discovery.modules, new Set(existing.chosen.keys())));
  const unfrozen = unfreezeExisting(model, existing.chosen);
  warnings.push(...unfrozen.warnings);
  return { model, parameters: [...inserted.parameters, ...unfrozen.parameters], lora: inserted.records, warnings };
}
