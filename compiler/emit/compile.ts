import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import type { SpecWarning } from "../dsl/match";
import type { Spec } from "../dsl/spec";
import { isSpecError, type SpecError } from "../dsl/spec-error";
import { canonicalJson, specHash, specToJson } from "../dsl/spec-json";
import { externalDataRefs, loadModel, saveModel } from "../ir/io";
import type { Model } from "../ir/model";
import { validateModel } from "../ir/validate";
import { discoverModules } from "../match/discover";
import { discoveryToJson } from "../match/json";
import { moduleTypeDeclarations } from "../match/emit-types";
import { type PeftGraph, applySpec } from "../methods/apply";
import type { Tensor } from "../onnx/tensor";
import { type AdapterPlans, adapterPlans } from "./adapter-import";
import { withStagingFolder } from "./artifact-folder";
import type { Manifest } from "./manifest";
import { peftcVersion } from "../version";
import { writeSafetensors } from "./safetensors";
import { countBaseParameters, trainableSummary } from "./trainable-summary";

export interface CompileOptions {
  modelFile: string;
  outDir: string;
  /** The spec; may be null when an adapter folder alone says what to add. */
  spec: Spec | null;
  /** The spec's file, named in the manifest. */
  specFile?: string | null;
  /** A Hugging Face PEFT LoRA adapter folder whose tensors (and, without a spec, whose config) the graph starts from. */
  adapterDir?: string | null;
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
export const ARTIFACT_FILES = { eval: "eval.onnx", params: "params.safetensors", manifest: "manifest.json", types: "model.d.ts" } as const;

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
  const model = loadModel(options.modelFile);
  const baseCount = countBaseParameters(model);
  const discovery = discoverModules(model);
  const adapter: AdapterPlans | null = options.adapterDir ? adapterPlans(options.adapterDir, discovery) : null;
  if (!options.spec && !adapter) {
    throw new PeftcError("E_SPEC_LOAD", "nothing to compile: give a spec (--spec FILE) or a PEFT adapter folder (--adapter DIR).");
  }
  let peft: PeftGraph;
  try {
    peft = applySpec(model, discovery, options.spec, {
      mode: "eval",
      extraLora: options.spec ? [] : adapter!.plans,
      initialLora: adapter?.values,
    });
  } catch (error) {
    if (isSpecError(error)) options.relocate?.(error);
    throw error;
  }
  if (adapter && options.spec) adapter.checkCovered(peft.lora);
  validateModel(model);

  const summary = trainableSummary(baseCount, peft.parameters);
  const files: string[] = [];
  let manifest: Manifest | undefined;
  withStagingFolder(options.outDir, (staging) => {
    const placed = saveModel(model, path.join(staging, ARTIFACT_FILES.eval));
    files.push(ARTIFACT_FILES.eval);
    writeSafetensors(path.join(staging, ARTIFACT_FILES.params), new Map<string, Tensor>(peft.parameters.map((parameter) => [parameter.name, parameter.tensor])), { format: "pt" });
    files.push(ARTIFACT_FILES.params);
    fs.writeFileSync(path.join(staging, ARTIFACT_FILES.types), moduleTypeDeclarations(discoveryToJson(discovery), path.basename(options.modelFile)));
    files.push(ARTIFACT_FILES.types);
    manifest = buildManifest(options, model, peft, summary, placed.filter((file) => file.placement === "hardlink" || file.placement === "copy"));
    fs.writeFileSync(path.join(staging, ARTIFACT_FILES.manifest), JSON.stringify(manifest, null, 2) + "\n");
    files.push(ARTIFACT_FILES.manifest);
    files.push(...placed.map((file) => file.location));
  });
  return { outDir: options.outDir, manifest: manifest!, warnings: peft.warnings, files };
}

function buildManifest(
  options: CompileOptions,
  model: Model,
  peft: PeftGraph,
  summary: Manifest["summary"],
  placed: { location: string; placement: string }[],
): Manifest {
  const trainable = new Set(peft.parameters.map((parameter) => parameter.name));
  const externalData = new Map<string, number>();
  for (const { ref } of externalDataRefs(model)) externalData.set(ref.location, fileSize(ref.path));
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
    parameters: peft.parameters.map(({ name, shape, dtype, init, module, method }) => ({ name, shape, dtype, init, module, method })),
    lora: peft.lora,
    summary,
    graphs: {
      eval: {
        file: ARTIFACT_FILES.eval,
        inputs: model.graph.inputs.filter((value) => !trainable.has(value.name)).map((value) => value.name),
        outputs: model.graph.outputs.map((value) => value.name),
      },
    },
    externalData: placed.map(({ location, placement }) => ({ location, placement: placement as "hardlink" | "copy" })),
    merged: [],
    warnings: peft.warnings.map((warning) => warning.message),
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
