import * as path from "node:path";
import { ExternalDataRef } from "../onnx/external-data";
import { PlacedExternalFile, placeExternalFiles } from "../onnx/external-files";
import { decodeModelProto, readModelProto, writeModelFile, WriteOptions } from "../onnx/model-file";
import { Tensor } from "../onnx/tensor";
import { AttributeType } from "./attribute";
import { modelFromProto } from "./from-proto";
import { Graph } from "./graph";
import { Model } from "./model";
import { modelToProto } from "./to-proto";
import { validateModel } from "./validate";
import { PeftcError } from "../errors";

export interface LoadOptions {
  /**
   * Accept external data files that are missing, for graphs shipped without
   * their weights. Reading such a tensor's values then fails; its name, type
   * and shape are still known.
   */
  allowMissingExternalData?: boolean;
  /** Check the IR's invariants after loading (cycles, undefined values, unknown domains). Default true. */
  validate?: boolean;
}

/** Loads a model file into the IR. Weights in external data are located and checked, not read. */
export function loadModel(filePath: string, options: LoadOptions = {}): Model {
  const proto = readModelProto(filePath);
  const model = modelFromProto(proto, filePath, {
    baseDir: path.dirname(path.resolve(filePath)),
    modelPath: filePath,
    allowMissing: options.allowMissingExternalData ?? false,
  });
  if (options.validate ?? true) validateLoaded(model, filePath);
  return model;
}

function validateLoaded(model: Model, source: string): void {
  try {
    validateModel(model);
  } catch (error) {
    if (error instanceof PeftcError) throw new PeftcError(error.code, `${source}: ${error.message}`, { file: source, ...error.details });
    throw error;
  }
}

/** Loads a model from bytes; it must not use external data. */
export function loadModelFromBuffer(bytes: Uint8Array, source = "<buffer>", options: Pick<LoadOptions, "validate"> = {}): Model {
  const model = modelFromProto(decodeModelProto(bytes, source), source);
  if (options.validate ?? true) validateLoaded(model, source);
  return model;
}

/** Lists the external data references of every initializer, subgraphs included. */
export function externalDataRefs(model: Model): ExternalDataRef[] {
  const refs: ExternalDataRef[] = [];
  const visit = (graph: Graph): void => {
    for (const value of graph.initializers.values()) collect(value.initializer);
    for (const node of graph.nodes) {
      for (const attribute of node.attributes.values()) {
        if (attribute.type === AttributeType.GRAPH) visit(attribute.value);
        if (attribute.type === AttributeType.GRAPHS) attribute.value.forEach(visit);
      }
    }
  };
  const collect = (tensor: Tensor | undefined): void => {
    if (tensor?.source.kind === "external") refs.push(tensor.source.ref);
  };
  visit(model.graph);
  return refs;
}

/**
 * Saves a model atomically. With `externalDataThreshold`, initializers of at
 * least that many bytes are written to one new data file next to the model.
 * Without it, weights that already live in external data stay in their file,
 * which is hard-linked (or copied) next to the model, as the returned list
 * records, unless `existingExternalData: "inline"` copies them into the model.
 */
export function saveModel(model: Model, filePath: string, options: WriteOptions = {}): PlacedExternalFile[] {
  let placed: PlacedExternalFile[] = [];
  if (options.externalDataThreshold === undefined && options.existingExternalData !== "inline") {
    placed = placeExternalFiles(externalDataRefs(model), path.dirname(path.resolve(filePath)));
  }
  writeModelFile(filePath, (sink) => modelToProto(model, sink), options);
  return placed;
}
