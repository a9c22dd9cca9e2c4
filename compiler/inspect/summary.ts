import * as fs from "node:fs";
import { DataType, dataTypeName, isFloatType } from "../onnx/dtype";
import { Graph } from "../ir/graph";
import { Model } from "../ir/model";
import { Dim, ValueType } from "../ir/types";
import { forEachGraph } from "../ir/traverse";
import { InferenceReport, inferShapes, unsupportedOpTypes } from "../ir/infer";
import { emptyReport } from "../ir/infer/report";
import { type ModulesSummary, summarizeModules } from "./modules";

/** A graph input or output as `peftc inspect` lists it. */
export interface ValueSummary {
  name: string;
  dtype: string;
  /** Known sizes, symbolic names, or null for unknown dims; null when even the rank is unknown. */
  shape: Dim[] | null;
  /**
   * True for an input with an initializer of the same name: a default the
   * caller may override, as onnxruntime's LoRA adapter slots are.
   */
  hasDefault?: boolean;
}

/** One external data file and the tensors stored in it. */
export interface ExternalFileSummary {
  location: string;
  path: string;
  tensors: number;
  bytes: number;
  exists: boolean;
}

/** Report of `peftc inspect` on a model; `--json` prints this object. */
export interface ModelSummary {
  file: string;
  fileBytes: number;
  producer: { name: string; version: string };
  irVersion: number;
  opsets: { domain: string; version: number }[];
  graph: {
    name: string;
    nodes: number;
    nodesInSubgraphs: number;
    nodesInFunctions: number;
    /** Initializers of the main graph and every subgraph; `parameters` counts all of them. */
    initializers: number;
    initializersInSubgraphs: number;
    functions: string[];
  };
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  /** Linear layers, embeddings and norms found by module discovery, and what it did not understand. */
  modules: ModulesSummary;
  /** Node count per operator, `domain::Op` outside the default domain, most used first. */
  ops: { op: string; count: number }[];
  parameters: {
    /** Elements of floating-point initializers, the usual meaning of a parameter count. */
    count: number;
    /** Bytes of all initializers, inline and external. */
    bytes: number;
    byDtype: Record<string, number>;
  };
  externalData: ExternalFileSummary[];
  /** Outcome of shape and dtype inference over every node output. */
  shapeInference: {
    typed: number;
    /** Typed values whose rank or some dimension is still unknown. */
    incomplete: number;
    untyped: number;
    /** Operators without a shape rule, as `domain::OpType`; reported, never guessed. */
    unsupportedOps: string[];
    /** Nodes whose rule rejected their inputs, each with the reason. */
    failures: string[];
    conflicts: number;
  };
  warnings: string[];
}

function describeValue(name: string, type: ValueType | undefined): ValueSummary {
  if (!type) return { name, dtype: "?", shape: null };
  if (type.kind === "other") return { name, dtype: type.proto.value ?? "other", shape: null };
  return { name, dtype: dataTypeName(type.elemType), shape: type.shape ? [...type.shape] : null };
}

/**
 * Summarizes a loaded model without reading any weight values. Runs module
 * discovery, then shape inference, which fills in value types on `model`.
 */
export function summarizeModel(model: Model, file: string): ModelSummary {
  const ops = new Map<string, number>();
  let nodesInSubgraphs = 0;
  let nodesInFunctions = 0;
  const countOps = (graph: Graph): void => {
    for (const node of graph.nodes) ops.set(node.qualifiedOpType, (ops.get(node.qualifiedOpType) ?? 0) + 1);
  };
  forEachGraph(model.graph, (graph) => {
    countOps(graph);
    if (graph !== model.graph) nodesInSubgraphs += graph.nodes.length;
  });
  for (const fn of model.functions) {
    forEachGraph(fn.body, (graph) => {
      countOps(graph);
      nodesInFunctions += graph.nodes.length;
    });
  }

  const parameters = { count: 0, bytes: 0, byDtype: {} as Record<string, number> };
  const external = new Map<string, ExternalFileSummary>();
  let initializerCount = 0;
  let initializersInSubgraphs = 0;
  forEachGraph(model.graph, (graph) => {
    for (const value of graph.initializers.values()) {
      const tensor = value.initializer!;
      initializerCount += 1;
      if (graph !== model.graph) initializersInSubgraphs += 1;
      const dtype = dataTypeName(tensor.dtype);
      parameters.byDtype[dtype] = (parameters.byDtype[dtype] ?? 0) + tensor.size;
      parameters.bytes += tensor.byteLength;
      if (isFloatType(tensor.dtype as DataType)) parameters.count += tensor.size;
      if (tensor.source.kind === "external") {
        const ref = tensor.source.ref;
        const entry = external.get(ref.location) ?? { location: ref.location, path: ref.path, tensors: 0, bytes: 0, exists: !ref.missing };
        entry.tensors += 1;
        entry.bytes += ref.length;
        external.set(ref.location, entry);
      }
    }
  });

  // Discovery runs before inference so that it reads the graph as loaded,
  // as the golden module lists of test/compiler/match/golden/ do.
  const modules = summarizeModules(model, parameters.count);
  const inference = runInference(model);

  return {
    file,
    fileBytes: fs.existsSync(file) ? fs.statSync(file).size : 0,
    producer: { name: model.producerName, version: model.producerVersion },
    irVersion: model.irVersion,
    opsets: [...model.opsetImports].map(([domain, version]) => ({ domain: domain || "ai.onnx", version })),
    graph: {
      name: model.graph.name,
      nodes: model.graph.nodes.length,
      nodesInSubgraphs,
      nodesInFunctions,
      initializers: initializerCount,
      initializersInSubgraphs,
      functions: model.functions.map((fn) => `${fn.domain}::${fn.name}`),
    },
    inputs: model.graph.inputs.map((value) => ({ ...describeValue(value.name, value.type), ...(value.initializer ? { hasDefault: true } : {}) })),
    outputs: model.graph.outputs.map((value) => describeValue(value.name, value.type)),
    modules,
    ops: [...ops].map(([op, n]) => ({ op, count: n })).sort((a, b) => b.count - a.count || a.op.localeCompare(b.op)),
    parameters,
    externalData: [...external.values()],
    shapeInference: {
      typed: inference.inferred.length,
      incomplete: inference.incomplete.length,
      untyped: inference.untyped.length,
      unsupportedOps: unsupportedOpTypes(inference),
      failures: inference.failures.map((failure) => failure.message),
      conflicts: inference.conflicts.length,
    },
    warnings: [...model.loadWarnings],
  };
}

/**
 * Runs shape inference for the summary. An internal error in a rule must not
 * hide the rest of the report, so it becomes a failure entry instead.
 */
function runInference(model: Model): InferenceReport {
  try {
    return inferShapes(model);
  } catch (error) {
    const report = emptyReport();
    report.failures.push({ graph: model.graph.name, node: "", opType: "", domain: "", message: `shape inference stopped: ${(error as Error).message}` });
    return report;
  }
}
