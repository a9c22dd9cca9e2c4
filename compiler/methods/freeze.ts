import type { LoraMethod } from "../dsl/lora";
import type { SelectiveMethod } from "../dsl/selective";
import { SpecError } from "../dsl/spec-error";
import { type SpecWarning, resolveSelection } from "../dsl/match";
import type { Target } from "../dsl/targets";
import type { Model } from "../ir/model";
import type { Value } from "../ir/value";
import type { DiscoveredModule } from "../match/module";
import type { LoraPlan } from "./lora-plan";
import type { ParameterMethod, TrainableParameter } from "./parameters";
import { parameterRow, unfreezeInitializer } from "./trainable";

/** Each selective method's DSL name and the tensors it looks for, for the error when it finds none. */
const MISSING_TENSORS: Record<SelectiveMethod["method"], { name: string; tensors: string }> = {
  bitfit: { name: "bitfit", tensors: "no bias" },
  layernorm: { name: "layerNormTuning", tensors: "no norm with a scale or bias" },
  unfreeze: { name: "unfreeze", tensors: "no tensor" },
};

/**
 * Chooses the existing tensors that train besides the new ones. LoRA's
 * `bias` option picks biases and its `train` selector whole modules. BitFit
 * takes biases, LayerNorm tuning norm scales and biases, and unfreeze every
 * tensor of its modules. Everything else stays frozen. A tensor read by
 * two modules (a tied embedding and head) is one initializer, so it becomes
 * one parameter however many modules select it.
 */
export function chooseExisting(
  targets: readonly Target[],
  methods: readonly LoraMethod[],
  plans: readonly LoraPlan[],
  selective: readonly SelectiveMethod[] = [],
): { chosen: ExistingChoice; warnings: SpecWarning[] } {
  const chosen: ExistingChoice = new Map();
  const warnings: SpecWarning[] = [];
  const choose = (value: Value | undefined, method: ParameterMethod, module: DiscoveredModule): void => {
    if (value?.initializer && !chosen.has(value)) chosen.set(value, { method, module: module.path });
  };
  const wholeModules = targets.filter((target) => target.part === undefined).map((target) => target.module);

  for (const method of methods) {
    if (method.bias === "all") for (const module of wholeModules) choose(module.bias?.value, "bias", module);
    if (method.bias === "lora_only") {
      for (const plan of plans) if (plan.method === method) choose(plan.target.module.bias?.value, "bias", plan.target.module);
    }
    if (method.train) {
      const selection = resolveSelection(method.train, targets.filter((target) => target.part === undefined), "lora train");
      warnings.push(...selection.warnings);
      for (const target of selection.targets) {
        choose(target.module.weight?.value, "train", target.module);
        choose(target.module.bias?.value, "train", target.module);
      }
    }
  }

  for (const method of selective) {
    const wholes = targets.filter((target) => target.part === undefined);
    const kinds: Target["kind"][] | undefined = method.method === "layernorm" ? ["norm"] : undefined;
    let picked = method.method === "layernorm" ? wholes.filter((target) => target.kind === "norm") : wholes;
    if (method.targets) {
      const what = method.method === "layernorm" ? "layerNormTuning targets" : `${method.method} targets`;
      const selection = resolveSelection(method.targets, wholes, what, kinds);
      warnings.push(...selection.warnings);
      picked = selection.targets;
    }
    const before = chosen.size;
    for (const target of picked) {
      if (method.method !== "bitfit") choose(target.module.weight?.value, method.method, target.module);
      choose(target.module.bias?.value, method.method, target.module);
    }
    if (chosen.size === before) {
      const missing = MISSING_TENSORS[method.method];
      throw new SpecError("E_SPEC_MODEL", `${missing.name}: the selected modules have ${missing.tensors} that another method does not already train, so it would train nothing. Choose other modules or another method.`, method.site);
    }
  }
  return { chosen, warnings };
}

/** Existing tensors chosen to train, with the reason and the module that chose each. */
export type ExistingChoice = Map<Value, { method: ParameterMethod; module: string }>;

/** Lists the chosen existing tensors as graph inputs, so they train. */
export function unfreezeExisting(model: Model, chosen: ExistingChoice): { parameters: TrainableParameter[]; warnings: SpecWarning[] } {
  const parameters: TrainableParameter[] = [];
  const warnings: SpecWarning[] = [];
  for (const [value, { method, module }] of chosen) {
    if (value.graph !== model.graph) {
      warnings.push({ message: `${module}: "${value.name}" lives in a subgraph, where a tensor cannot be a graph input, so it stays frozen.`, site: undefined });
      continue;
    }
    const tensor = unfreezeInitializer(model.graph, value);
    parameters.push(parameterRow(tensor, method, module, "base", false));
  }
  return { parameters, warnings };
}
