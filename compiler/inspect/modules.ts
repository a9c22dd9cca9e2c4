import type { Model } from "../ir/model";
import type { Value } from "../ir/value";
import { type Discovery, type DiscoveryJson, discoverModules, discoveryToJson } from "../match";

/** Modules section of the `peftc inspect` report: the discovered modules in the plain JSON form of `discoveryToJson`, with totals. */
export interface ModulesSummary extends DiscoveryJson {
  count: number;
  /** Elements of the initializers that modules record, each tied weight counted once. */
  parametersInModules: number;
  /** The report's float parameter count minus `parametersInModules`. */
  parametersOutsideModules: number;
  /** Message of the internal error that stopped discovery. The lists are empty when it is set. */
  failure?: string;
}

/**
 * Discovers the modules of `model` for the report. `parameterCount` is the
 * float parameter count of the whole model, which the outside-modules total
 * is taken from. An internal error in discovery must not hide the rest of
 * the report, so it becomes `failure` instead.
 */
export function summarizeModules(model: Model, parameterCount: number): ModulesSummary {
  let discovery: Discovery;
  try {
    discovery = discoverModules(model);
  } catch (error) {
    const failure = `module discovery stopped: ${(error as Error).message}`;
    return { count: 0, parametersInModules: 0, parametersOutsideModules: parameterCount, modules: [], unrecognised: [], failure };
  }

  const recorded = new Set<Value>();
  for (const module of discovery.modules) {
    if (module.weight) recorded.add(module.weight.value);
    if (module.bias) recorded.add(module.bias.value);
  }
  let inModules = 0;
  for (const value of recorded) inModules += value.initializer!.size;

  const json = discoveryToJson(discovery);
  return { count: json.modules.length, parametersInModules: inModules, parametersOutsideModules: parameterCount - inModules, ...json };
}
