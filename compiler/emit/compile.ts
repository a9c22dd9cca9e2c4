import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import type { SpecWarning } from "../dsl/match";
import { type Spec, type TrainSettings, defaultTrainSettings } from "../dsl/spec";
import { isSpecError, type SpecError } from "../dsl/spec-error";
import { canonicalJson, specHash, specToJson, toPlain } from "../dsl/spec-json";
import { externalDataRefs, loadModel, saveModel } from "../ir/io";
import type { Model } from "../ir/model";
import { topologicalOrder } from "../ir/topological-sort";
import { validateModel } from "../ir/validate";
import type { Value } from "../ir/value";
import { discoverModules } from "../match/discover";
import { discoveryToJson } from "../match/json";
import { moduleTypeDeclarations } from "../match/emit-types";
import { type PeftGraph, applySpec } from "../methods/apply";
import type { Tensor } from "../onnx/tensor";
import { type AdapterPlans, adapterPlans } from "./adapter-import";
import { withStagingFolder } from "./artifact-folder";
import { type InferGraph, buildInferGraph, isDecoder } from "./infer-graph";
import { markArtifactGraph, rejectArtifactGraph } from "./artifact-metadata";
import type { Manifest, ManifestGraph } from "./manifest";
import type { PlacedExternalFile } from "../onnx/external-files";
import type { Discovery } from "../match/discover";
import type { TrainableParameter } from "../methods/parameters";
import { type TrainingGraphKind, addTrainingHead, buildApplyGraph, optimizerStateNames } from "../train/training-graphs";
import type { Loss } from "../dsl/training";
import { elementTypeName } from "../onnx/dtype";
import { peftcVersion } from "../version";
import { writeSafetensors } from "./safetensors";
import { applyParamsFile } from "./initial-params";
import { countBaseParameters, trainableSummary } from "./trainable-summary";
import { type TokenLimits, tokenLimits } from "./token-limits";

export interface CompileOptions {
  modelFile: string;
  outDir: string;
  /** The spec, or null when an adapter folder alone defines what to add. */
  spec: Spec | null;
  /** The spec's file, named in the manifest. */
  specFile?: string | null;
  /** A Hugging Face PEFT LoRA adapter folder whose tensors (and, without a spec, whose config) the graph starts from. */
  adapterDir?: string | null;
  /** A params file (from `peftc train`) whose tensors replace the initial values, in params.safetensors and in what infer.onnx folds in. */
  paramsFile?: string | null;
  /** Moves a spec error to the spec line of the option at fault; the spec loader provides it. */
  relocate?: (error: SpecError) => void;
}

export interface CompileResult {
  outDir: string;
  manifest: Manifest;
  warnings: SpecWarning[];
  /** Files written into the folder, in the order written. */
  files: string[];
}

/** File names of an artifact folder. */
export const ARTIFACT_FILES = {
  eval: "eval.onnx",
  grad: "grad.onnx",
  train: "train.onnx",
  apply: "apply.onnx",
  infer: "infer.onnx",
  prefix: "prefix.onnx",
  params: "params.safetensors",
  manifest: "manifest.json",
  types: "model.d.ts",
} as const;

/**
 * Compiles a model and a spec into an artifact folder: the PEFT forward
 * graph, the initial trainable tensors, the manifest and the model's module
 * types. Everything is written to a staging folder beside `outDir` and
 * renamed into place at the end, so an error never leaves a half-written
 * folder. Weights the base model keeps in external data are hard-linked (or
 * copied) into the folder, never rewritten, and never read except for
 * existing tensors that become trainable.
 */
export function compileArtifacts(options: CompileOptions): CompileResult {
  const { model, discovery, peft, baseCount } = compileGraph(options, null);
  if (options.paramsFile) applyParamsFile(peft.parameters, options.paramsFile);
  const warnings = new Map(peft.warnings.map((warning) => [warning.message, warning]));
  const settings = options.spec?.train ?? defaultTrainSettings();
  const decays = decayRule(discovery, settings);

  const graphs = new Map<TrainingGraphKind, Model>();
  let apply: Model | null = null;
  let trainingError: PeftcError | undefined;
  let loss: Loss | undefined;
  try {
    for (const kind of ["eval", "grad", "train"] as const) {
      const built = compileGraph(options, kind);
      loss ??= built.loss;
      checkSameParameters(peft, built.peft, kind);
      graphs.set(kind, built.model);
      for (const warning of built.peft.warnings) if (!warnings.has(warning.message)) warnings.set(warning.message, warning);
    }
    apply = buildApplyGraph(peft.parameters, settings, decays, model.opsetVersion("") ?? 17);
  } catch (error) {
    // A model the loss or backward pass cannot handle (an old opset, an op without a gradient rule) can still be served.
    if (!(error instanceof PeftcError) || error.code !== "E_TRAINING_GRAPH") throw error;
    trainingError = error;
    graphs.clear();
  }

  // Generation needs [batch, sequence, vocab] logits; encoders and classifiers get no inference graph.
  const wantsInfer = (options.spec?.inference.kvCache ?? true) && isDecoder(model, discovery);
  let infer: InferGraph | null = null;
  if (wantsInfer) {
    try {
      infer = buildInferGraph(options, peft);
    } catch (error) {
      // A decoder whose attention layout the cache rewrite does not know still trains; it only gets no infer.onnx.
      if (!(error instanceof PeftcError) || error.code !== "E_UNKNOWN_DOMAIN" || trainingError) throw error;
      const message = `no infer.onnx: ${error.message}`;
      warnings.set(message, { message, site: undefined });
    }
  }
  if (trainingError) {
    if (!infer) throw trainingError;
    const message = `no training graphs (eval, grad, train, apply), only infer.onnx: ${trainingError.message}`;
    warnings.set(message, { message, site: undefined });
  }

  const summary = trainableSummary(baseCount, peft.parameters);
  const files: string[] = [];
  let manifest: Manifest | undefined;
  withStagingFolder(options.outDir, (staging) => {
    // The mark lets a later compile reject these graphs as base models.
    for (const [kind, graph] of graphs) markArtifactGraph(graph, kind);
    if (apply) markArtifactGraph(apply, "apply");
    const placed: PlacedExternalFile[] = [];
    for (const [kind, graph] of graphs) {
      placed.push(...saveModel(graph, path.join(staging, ARTIFACT_FILES[kind])));
      files.push(ARTIFACT_FILES[kind]);
    }
    if (apply) {
      saveModel(apply, path.join(staging, ARTIFACT_FILES.apply));
      files.push(ARTIFACT_FILES.apply);
    }
    if (infer) {
      markArtifactGraph(infer.model, "infer");
      // Merged weights are new tensors: with a base in external data they go to their own file, and the untouched weights stay hard-linked.
      const external = externalDataRefs(infer.model).length > 0 && infer.merged.length > 0;
      const options_ = external ? { externalDataThreshold: 1024, externalDataLocation: `${ARTIFACT_FILES.infer}.data`, existingExternalData: "keep" as const } : {};
      placed.push(...saveModel(infer.model, path.join(staging, ARTIFACT_FILES.infer), options_));
      files.push(ARTIFACT_FILES.infer);
      if (fs.existsSync(path.join(staging, `${ARTIFACT_FILES.infer}.data`))) files.push(`${ARTIFACT_FILES.infer}.data`);
      if (infer.prefix) {
        saveModel(infer.prefix, path.join(staging, ARTIFACT_FILES.prefix));
        files.push(ARTIFACT_FILES.prefix);
      }
    }
    writeSafetensors(path.join(staging, ARTIFACT_FILES.params), new Map<string, Tensor>(peft.parameters.map((parameter) => [parameter.name, parameter.tensor])), { format: "pt" });
    files.push(ARTIFACT_FILES.params);
    fs.writeFileSync(path.join(staging, ARTIFACT_FILES.types), moduleTypeDeclarations(discoveryToJson(discovery), path.basename(options.modelFile)));
    files.push(ARTIFACT_FILES.types);
    const copied = new Map(placed.filter((file) => file.placement === "hardlink" || file.placement === "copy").map((file) => [file.location, file]));
    const limits = tokenLimits(discovery, options.spec ?? null);
    manifest = buildManifest(options, graphs, apply, infer, peft, summary, settings, loss, decays, limits, [...copied.values()], [...warnings.values()]);
    fs.writeFileSync(path.join(staging, ARTIFACT_FILES.manifest), JSON.stringify(manifest, null, 2) + "\n");
    files.push(ARTIFACT_FILES.manifest);
    files.push(...copied.keys());
  });
  return { outDir: options.outDir, manifest: manifest!, warnings: [...warnings.values()], files };
}

interface CompiledGraph {
  model: Model;
  /** The loss the training graphs use; undefined for the plain PEFT graph. */
  loss?: Loss;
  discovery: Discovery;
  peft: PeftGraph;
  baseCount: number;
}

/**
 * Loads the model, applies the spec (dropout only in the grad and train
 * graphs) and adds the graph's loss, backward pass or optimizer step. Each
 * graph starts from its own load, because the rewrite changes the model in
 * place; loading reads no weight data.
 */
function compileGraph(options: CompileOptions, kind: TrainingGraphKind | null): CompiledGraph {
  const model = loadModel(options.modelFile);
  rejectArtifactGraph(model, options.modelFile);
  const opset = model.opsetVersion("") ?? 0;
  if (kind !== null && opset < 13) {
    throw new PeftcError(
      "E_TRAINING_GRAPH",
      `${options.modelFile}: the model imports default-domain opset ${opset}, but the loss and the backward pass need opset 13 or later (axes as inputs). Re-export the model with opset_version=13 or later.`,
      { file: options.modelFile },
    );
  }
  const baseCount = countBaseParameters(model);
  const discovery = discoverModules(model);
  const adapter: AdapterPlans | null = options.adapterDir ? adapterPlans(options.adapterDir, discovery) : null;
  if (!options.spec && !adapter) {
    throw new PeftcError("E_SPEC_LOAD", "nothing to compile: give a spec (--spec FILE) or a PEFT adapter folder (--adapter DIR).");
  }
  let peft: PeftGraph;
  try {
    peft = applySpec(model, discovery, options.spec, {
      mode: kind === "eval" || kind === null ? "eval" : "train",
      extraLora: options.spec ? [] : adapter!.plans,
      initialLora: adapter?.values,
      modelFile: options.modelFile,
    });
  } catch (error) {
    if (isSpecError(error)) options.relocate?.(error);
    throw error;
  }
  if (adapter && options.spec) adapter.checkCovered(peft.lora);
  const settings = options.spec?.train ?? defaultTrainSettings();
  let loss: Loss | undefined;
  if (kind !== null) {
    try {
      loss = addTrainingHead(model, kind, peft.parameters, settings, decayRule(discovery, settings), layerBoundaries(model, discovery), peft.precedingLogits);
    } catch (error) {
      if (isSpecError(error)) options.relocate?.(error);
      throw error;
    }
  }
  validateModel(model);
  return { model, discovery, peft, baseCount, loss };
}

/**
 * The residual stream entering each transformer layer, read as the input of
 * the layer's first norm, then the input of the final norm: the cut points
 * of activation checkpointing.
 */
function layerBoundaries(model: Model, discovery: Discovery): Value[] {
  const position = new Map(topologicalOrder(model.graph).map((node, i) => [node, i]));
  const first = new Map<number | null, { at: number; input: Value }>();
  for (const module of discovery.modules) {
    if (module.kind !== "norm" || !module.input || module.node.graph !== model.graph) continue;
    if (module.layer === null && module.path !== "norm") continue;
    const at = position.get(module.node) ?? Infinity;
    const seen = first.get(module.layer);
    if (!seen || at < seen.at) first.set(module.layer, { at, input: module.input });
  }
  return [...first.values()].sort((a, b) => a.at - b.at).map((entry) => entry.input);
}

function checkSameParameters(first: PeftGraph, second: PeftGraph, kind: string): void {
  const names = (peft: PeftGraph): string => peft.parameters.map((parameter) => `${parameter.name}:${parameter.shape.join("x")}`).join(",");
  if (names(first) !== names(second)) {
    throw new PeftcError("E_IR_INVARIANT", `the ${kind} graph got other trainable tensors than the eval graph; the rewrite must not depend on the graph kind. Please report this.`);
  }
}

/**
 * Weight decay applies to new tensors and to unfrozen weights, but not to
 * biases and norm weights, as PyTorch fine-tuning recipes group them,
 * unless the spec sets `decayBiasesAndNorms`.
 */
function decayRule(discovery: Discovery, settings: TrainSettings): (parameter: TrainableParameter) => boolean {
  const normWeights = new Set(discovery.modules.filter((module) => module.kind === "norm").flatMap((module) => [module.weight?.value.name, module.bias?.value.name]));
  const biases = new Set(discovery.modules.flatMap((module) => (module.bias ? [module.bias.value.name] : [])));
  return (parameter) => settings.decayBiasesAndNorms || !(parameter.method === "bias" || biases.has(parameter.name) || normWeights.has(parameter.name));
}

function buildManifest(
  options: CompileOptions,
  graphs: ReadonlyMap<TrainingGraphKind, Model>,
  apply: Model | null,
  infer: InferGraph | null,
  peft: PeftGraph,
  summary: Manifest["summary"],
  settings: TrainSettings,
  loss: Loss | undefined,
  decays: (parameter: TrainableParameter) => boolean,
  limits: TokenLimits,
  placed: { location: string; placement: string }[],
  warnings: readonly SpecWarning[],
): Manifest {
  const trainable = new Set(peft.parameters.map((parameter) => parameter.name));
  const state = new Set(optimizerStateNames(settings, peft.parameters));
  const externalData = new Map<string, number>();
  for (const graph of [...graphs.values(), ...(infer ? [infer.model] : [])]) for (const { ref } of externalDataRefs(graph)) externalData.set(ref.location, fileSize(ref.path));
  const typeOf = (value: Value): { dtype: string; shape: (number | string | null)[] } | null =>
    value.type?.kind === "tensor" ? { dtype: elementTypeName(value.type.elemType), shape: [...(value.type.shape ?? [])] } : null;
  const describe = (file: string, model: Model): ManifestGraph => ({
    file,
    types: Object.fromEntries([...model.graph.inputs, ...model.graph.outputs].flatMap((value) => (typeOf(value) ? [[value.name, typeOf(value)!]] : []))),
    // The parameter table and optimizerState list the other inputs.
    inputs: model.graph.inputs.filter((value) => !trainable.has(value.name) && !state.has(value.name) && !value.name.endsWith(".grad")).map((value) => value.name),
    outputs: model.graph.outputs.map((value) => value.name),
  });
  return {
    format: "peftc.artifacts",
    version: 1,
    peftcVersion: peftcVersion(),
    baseModel: {
      file: path.basename(options.modelFile),
      sha256: hashFile(options.modelFile),
      externalData: [...externalData].sort(([a], [b]) => a.localeCompare(b)).map(([location, bytes]) => ({ location, bytes })),
    },
    spec: {
      file: options.specFile ? path.basename(options.specFile) : null,
      sha256: options.spec ? specHash(options.spec) : createHash("sha256").update(canonicalJson(null)).digest("hex"),
      value: options.spec ? specToJson(options.spec) : null,
    },
    adapter: options.adapterDir ? path.basename(path.resolve(options.adapterDir)) : null,
    parameters: peft.parameters.map(({ name, shape, dtype, init, module, method }, i) => ({ name, shape, dtype, init, module, method, weightDecay: decays(peft.parameters[i]) })),
    lora: peft.lora,
    ia3: peft.ia3,
    prefix: peft.prefix,
    summary,
    graphs: {
      ...Object.fromEntries([...graphs].map(([kind, graph]) => [kind, describe(ARTIFACT_FILES[kind], graph)])),
      ...(apply ? { apply: describe(ARTIFACT_FILES.apply, apply) } : {}),
      ...(infer ? { infer: describe(ARTIFACT_FILES.infer, infer.model) } : {}),
      ...(infer?.prefix ? { prefix: describe(ARTIFACT_FILES.prefix, infer.prefix) } : {}),
    },
    optimizer: { state: graphs.size > 0 ? [...state] : [], settings: toPlain(settings) },
    loss: loss ? toPlain(loss) : null,
    externalData: placed.map(({ location, placement }) => ({ location, placement: placement as "hardlink" | "copy" })),
    merged: infer?.merged ?? [],
    tokenLimits: limits,
    warnings: warnings.map((warning) => warning.message),
  };
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** SHA-256 of a file, read in chunks so a large inline model never sits in memory twice. */
function hashFile(file: string): string {
  const hash = createHash("sha256");
  const descriptor = fs.openSync(file, "r");
  try {
    const buffer = Buffer.alloc(1 << 20);
    let read: number;
    while ((read = fs.readSync(descriptor, buffer, 0, buffer.length, null)) > 0) hash.update(buffer.subarray(0, read));
  } finally {
    fs.closeSync(descriptor);
  }
  return hash.digest("hex");
}
