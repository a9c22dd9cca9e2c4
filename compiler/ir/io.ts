import * as path from "node:path";
import { ExternalDataRef } from "../onnx/external-data";
import { PlacedExternalFile, placeExternalFiles } from "../onnx/external-files";
import { decodeModelProto, readModelProto } from "../onnx/model-file";
import { WriteOptions, writeModelFile } from "../onnx/model-writer";
import { modelFromProto } from "./from-proto";
import { forEachGraph } from "./traverse";
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
  return withSource(filePath, () => {
    const proto = readModelProto(filePath);
    const model = modelFromProto(proto, filePath, {
      baseDir: path.dirname(path.resolve(filePath)),
      modelPath: filePath,
      allowMissing: options.allowMissingExternalData ?? false,
    });
    if (options.validate ?? true) validateModel(model);
    return model;
  });
}

/** Loads a model from bytes; it must not use external data. */
export function loadModelFromBuffer(bytes: Uint8Array, source = "<buffer>", options: Pick<LoadOptions, "validate"> = {}): Model {
  return withSource(source, () => {
    const model = modelFromProto(decodeModelProto(bytes, source), source);
    if (options.validate ?? true) validateModel(model);
    return model;
  });
}

/** Runs `load`, making sure every PeftcError it throws names `source`, so a user knows which file is at fault. */
function withSource<T>(source: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof PeftcError && !error.message.startsWith(source)) {
      throw new PeftcError(error.code, `${source}: ${error.message}`, { file: source, ...error.details });
    }
    throw error;
  }
}

/** Lists the external data references of every initializer; `inSubgraph` marks those of If, Loop or generation subgraphs. */
export function externalDataRefs(model: Model): { ref: ExternalDataRef; inSubgraph: boolean }[] {
  const refs: { ref: ExternalDataRef; inSubgraph: boolean }[] = [];
  forEachGraph(model.graph, (graph) => {
    for (const value of graph.initializers.values()) {
      const source = value.initializer?.source;
      if (source?.kind === "external") refs.push({ ref: source.ref, inSubgraph: graph !== model.graph });
    }
  });
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
  const keepsExisting = options.externalDataThreshold === undefined ? options.existingExternalData !== "inline" : options.existingExternalData === "keep";
  if (keepsExisting) {
    placed = placeExternalFiles(externalDataRefs(model), path.dirname(path.resolve(filePath)));
  }
  writeModelFile(filePath, (sink) => modelToProto(model, sink), options);
  return placed;
}
