import type { LoraMethod } from "../dsl/lora";
import { type SpecWarning, resolveSelection } from "../dsl/match";
import type { Target } from "../dsl/targets";
import type { Model } from "../ir/model";
import type { Value } from "../ir/value";
import type { DiscoveredModule } from "../match/module";
import type { LoraPlan } from "./lora-plan";
import type { ParameterMethod, TrainableParameter } from "./parameters";
import { parameterRow, unfreezeInitializer } from "./trainable";

/**
 * Chooses the existing tensors that train besides the new ones: biases by
 * each LoRA method's `bias` option, and the weight and bias of the modules
 * its `train` selector picks. Everything else stays frozen. A tensor read by
 * two modules (a tied embedding and head) is one initializer, so it becomes
 * one parameter however many modules select it.
 */
export function chooseExisting(targets: readonly Target[], methods: readonly LoraMethod[], plans: readonly LoraPlan[]): { chosen: ExistingChoice; warnings: SpecWarning[] } {
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
