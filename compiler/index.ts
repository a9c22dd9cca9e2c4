/**
 * The peftc library: what `import ... from "peftc"` provides. Today that is
 * the spec DSL that spec files import, the ONNX reader and writer, the
 * graph IR with its passes, shape inference, module discovery, the model
 * builder and the model summary behind `peftc inspect`.
 */
export * from "./dsl";

export { PeftcError, isPeftcError } from "./errors";
export type { ErrorCode } from "./errors";

export { DataType, dataTypeName } from "./onnx/dtype";
export { Tensor } from "./onnx/tensor";
export type { TensorSource } from "./onnx/tensor";
export type { WriteOptions } from "./onnx/model-writer";
export type { PlacedExternalFile } from "./onnx/external-files";

export { loadModel, loadModelFromBuffer, saveModel } from "./ir/io";
export type { LoadOptions } from "./ir/io";
export { Model } from "./ir/model";
export type { ModelFunction } from "./ir/model";
export { Graph } from "./ir/graph";
export type { NodeSpec, Position } from "./ir/graph";
export { Node } from "./ir/node";
export { Value } from "./ir/value";
export type { Use } from "./ir/value";
export { attr, AttributeType } from "./ir/attribute";
export type { Attribute } from "./ir/attribute";
export { tensorType, formatType } from "./ir/types";
export type { Dim, TensorType, ValueType } from "./ir/types";
export { validateModel } from "./ir/validate";
export { topologicalOrder, topologicalSort } from "./ir/topological-sort";
export { eliminateDeadCode } from "./ir/dead-code";
export { cloneModel } from "./ir/clone";
export { inferShapes, formatReport } from "./ir/infer";
export type { InferenceReport } from "./ir/infer";

export { discoverModules, discoveryToJson } from "./match";
export type { Discovery, DiscoveryJson, ModuleJson, DiscoveredModule, MatchedModule, Role, NamingSource, Unrecognised, WeightLayout } from "./match";

export { summarizeModel } from "./inspect/summary";
export type { ModelSummary } from "./inspect/summary";
export type { ModulesSummary } from "./inspect/modules";

export * as builder from "./builder";
