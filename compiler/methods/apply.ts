import type { LoraMethod } from "../dsl/lora";
import type { SelectiveMethod } from "../dsl/selective";
import type { SpecWarning } from "../dsl/match";
import type { Method, Spec } from "../dsl/spec";
import { type Target, selectionTargets } from "../dsl/targets";
import type { Model } from "../ir/model";
import type { Value } from "../ir/value";
import type { Discovery } from "../match/discover";
import type { Tensor } from "../onnx/tensor";
import { planAdapter } from "./adapter";
import { checkClaims } from "./conflicts";
import { chooseExisting, unfreezeExisting } from "./freeze";
import { planIa3 } from "./ia3";
import { type LoraValues, insertLora } from "./lora";
import { type LoraPlan, checkLoraConflicts, planLora } from "./lora-plan";
import type { GraphMode, MethodContext, PlannedMethod } from "./method-context";
import type { LoraRecord, TrainableParameter } from "./parameters";
import type { Ia3Record } from "./ia3-record";
import type { PrefixTuningRecord } from "./prefix-record";
import { planPrefixTuning } from "./prefix-tuning";
import { planPromptTuning } from "./prompt-tuning";
import { retieHead } from "./retie";

/** A model rewritten by a spec's methods, with what trains in it. */
export interface PeftGraph {
  model: Model;
  /** Trainable tensors in the order they were added: new ones by method, then unfrozen existing ones. */
  parameters: TrainableParameter[];
  lora: LoraRecord[];
  /** (IA)3 vectors, for merging and export. */
  ia3: Ia3Record[];
  /** The prefix tuning, for the manifest and the PEFT adapter export; null without one. */
  prefix: PrefixTuningRecord | null;
  warnings: SpecWarning[];
  /** Set by prompt tuning: logits of the position before each label, which a causal LM loss reads unshifted (see MethodResult). */
  precedingLogits?: Value;
}

/**
 * The methods a rewrite applies. infer.onnx applies the module methods
 * before the KV cache rewrite and the sequence methods (prompt and prefix
 * tuning, which change what the cache holds) after it.
 */
export type ApplyStage = "all" | "modules" | "sequence";

export interface ApplyOptions {
  mode: GraphMode;
  stage?: ApplyStage;
  /** True when the model already has the KV cache peftc adds, or its own (infer.onnx). */
  cached?: boolean;
  /** LoRA branches to add besides the spec's, such as those of an adapter file loaded without a spec. */
  extraLora?: LoraPlan[];
  /** Initial LoRA values by target path, replacing the initialisation. */
  initialLora?: LoraValues;
  /** Method kinds to leave out, such as those infer.onnx merged into the weights. */
  skip?: ReadonlySet<Method["method"]>;
  modelFile?: string;
  /** Trainable tensor values by name, for rewrites that fold them into constants. */
  values?: ReadonlyMap<string, Tensor>;
  /** True for infer.onnx with `inference.mergeAdapters`, where rewrites fold `values` into constants. */
  mergeAdapters?: boolean;
}

/** Methods that change the token sequence or the keys attention reads, rather than a module. */
const SEQUENCE_METHODS: ReadonlySet<Method["method"]> = new Set(["prompt", "prefix"]);

type PlannerOf<M extends Method> = (method: M, context: MethodContext) => PlannedMethod;
type AdditiveMethod = Extract<Method, { method: "adapter" | "ia3" | "prompt" | "prefix" }>;

const PLANNERS: { [K in AdditiveMethod["method"]]: PlannerOf<Extract<AdditiveMethod, { method: K }>> } = {
  adapter: planAdapter,
  ia3: planIa3,
  prompt: planPromptTuning,
  prefix: planPrefixTuning,
};

function planAdditive(method: AdditiveMethod, context: MethodContext): PlannedMethod {
  return (PLANNERS[method.method] as PlannerOf<AdditiveMethod>)(method, context);
}

/**
 * Applies a spec's methods to `model` in place: plans every method against
 * the discovered modules first and checks that no two claim the same place,
 * so a selector, option or conflict error leaves the model unchanged, then
 * inserts the new tensors and unfreezes the chosen existing ones. Every
 * other tensor stays a frozen initializer.
 */
export function applySpec(model: Model, discovery: Discovery, spec: Spec | null, options: ApplyOptions): PeftGraph {
  const stage = options.stage ?? "all";
  const included = (method: Method): boolean => {
    if (options.skip?.has(method.method)) return false;
    const sequence = SEQUENCE_METHODS.has(method.method);
    return stage === "all" || (stage === "sequence") === sequence;
  };
  const chosenMethods = spec ? spec.methods.filter(included) : [];
  const targets: Target[] = selectionTargets(discovery);
  const context: MethodContext = { model, discovery, targets, mode: options.mode, seed: spec?.seed ?? 0, cached: options.cached ?? false, modelFile: options.modelFile, values: options.values, mergeAdapters: options.mergeAdapters };

  const loraMethods = chosenMethods.filter((method): method is LoraMethod => method.method === "lora");
  const selective = chosenMethods.filter((method): method is SelectiveMethod => method.method === "bitfit" || method.method === "layernorm" || method.method === "unfreeze");
  const plans: LoraPlan[] = stage === "sequence" ? [] : [...(options.extraLora ?? [])];
  const warnings: SpecWarning[] = [];
  for (const method of loraMethods) {
    const planned = planLora(method, targets);
    plans.push(...planned.plans);
    warnings.push(...planned.warnings);
  }
  checkLoraConflicts(plans);
  const additive = chosenMethods.filter((method): method is AdditiveMethod => method.method in PLANNERS).map((method) => planAdditive(method, context));
  checkClaims(additive.flatMap((planned) => planned.claims));
  for (const planned of additive) warnings.push(...planned.warnings);
  const existing = chooseExisting(targets, loraMethods, plans, selective);
  warnings.push(...existing.warnings);

  const inserted = insertLora(model, plans, { mode: options.mode, seed: spec?.seed ?? 0, initial: options.initialLora });
  warnings.push(...inserted.warnings);
  const parameters = [...inserted.parameters];
  let precedingLogits: Value | undefined;
  const ia3: Ia3Record[] = [];
  let prefix: PrefixTuningRecord | null = null;
  for (const planned of additive) {
    const result = planned.insert(context);
    parameters.push(...result.parameters);
    warnings.push(...result.warnings);
    precedingLogits ??= result.precedingLogits;
    ia3.push(...(result.ia3 ?? []));
    prefix ??= result.prefix ?? null;
  }
  // Before unfreezing, while the embedding still has its data as an initializer.
  warnings.push(...retieHead(model, discovery.modules, new Set(existing.chosen.keys())));
  const unfrozen = unfreezeExisting(model, existing.chosen);
  warnings.push(...unfrozen.warnings);
  return { model, parameters: [...parameters, ...unfrozen.parameters], lora: inserted.records, ia3, prefix, warnings, precedingLogits };
}
