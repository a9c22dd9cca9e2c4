// The models whose discovered modules are kept as golden JSON files, shared
// by the test and by update-golden.ts. This file must not use jest globals,
// because update-golden.ts runs under plain tsx.
import * as fs from "node:fs";
import * as path from "node:path";
import { loadModel } from "../../../compiler/ir/io";
import type { Model } from "../../../compiler/ir/model";

export const FIXTURES_DIR = path.resolve(__dirname, "../../../fixtures");
export const SHARED_CORPUS_DIR = path.resolve(__dirname, "../../../../shared/corpus");
export const GOLDEN_DIR = path.join(__dirname, "golden");

/** Corpus folders whose external data is missing; their graphs load with shapes only. */
const GRAPH_ONLY_FOLDERS = ["phi35-mini-2l-graphonly", "phi4-mini-2l-graphonly"];

export interface GoldenModel {
  /** File stem of the golden JSON: `fixture.<stem>`, `fixture.<folder>.<stem>` or `corpus.<folder>.<stem>`. */
  key: string;
  file: string;
  source: "fixture" | "corpus";
}

function onnxFilesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...onnxFilesUnder(full));
    else if (entry.name.endsWith(".onnx")) found.push(full);
  }
  return found.sort();
}

export function fixtureModels(): GoldenModel[] {
  return onnxFilesUnder(FIXTURES_DIR).map((file) => {
    const relative = path.relative(FIXTURES_DIR, file).replace(/\.onnx$/, "");
    return { key: `fixture.${relative.split(path.sep).join(".")}`, file, source: "fixture" };
  });
}

/** Lists every corpus graph, or none when the corpus is not next to the repository. */
export function corpusGoldenModels(): GoldenModel[] {
  if (!fs.existsSync(SHARED_CORPUS_DIR)) return [];
  return onnxFilesUnder(SHARED_CORPUS_DIR).map((file) => {
    const relative = path.relative(SHARED_CORPUS_DIR, file).replace(/\.onnx$/, "");
    return { key: `corpus.${relative.split(path.sep).join(".")}`, file, source: "corpus" };
  });
}

export function loadGoldenModel(model: GoldenModel): Model {
  const relative = path.relative(SHARED_CORPUS_DIR, model.file);
  const graphOnly = model.source === "corpus" && GRAPH_ONLY_FOLDERS.some((folder) => relative.startsWith(folder + path.sep));
  return loadModel(model.file, { allowMissingExternalData: graphOnly });
}

export function goldenPath(model: GoldenModel): string {
  return path.join(GOLDEN_DIR, `${model.key}.json`);
}
