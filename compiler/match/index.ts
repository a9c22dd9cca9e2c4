export { discoverModules, type Discovery } from "./discover";
export { discoveryToJson, type DiscoveryJson, type MlpBlockJson, type ModuleJson } from "./json";
export type { ActivationFunction, MlpActivation, MlpBlock, MlpSplit } from "./mlp";
export type { DiscoveredModule, MatchedModule, Role, NamingSource, Unrecognised, WeightLayout } from "./module";
export { NAME_PATTERNS, layerIndexOf, nameSegments } from "./name-patterns";
