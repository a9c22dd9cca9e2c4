import * as fs from "node:fs";
import * as path from "node:path";

/** The shared corpus of third-party ONNX graphs, next to the repository (read-only). */
export const CORPUS_DIR = path.resolve(__dirname, "../../../shared/corpus");

export const hasCorpus = fs.existsSync(CORPUS_DIR);

/** `describe` for suites that need the corpus; skipped, with the reason in its name, when it is absent. */
export const describeCorpus: jest.Describe = hasCorpus
  ? describe
  : (((name: string, fn: () => void) => describe.skip(`${name} (skipped: ${CORPUS_DIR} not found)`, fn)) as jest.Describe);

/** Corpus graphs whose external data files are not shipped. */
export const GRAPH_ONLY = ["phi35-mini-2l-graphonly", "phi4-mini-2l-graphonly"];

/** Lists every .onnx file under the corpus as a sorted path relative to it. */
export function corpusModels(): string[] {
  if (!hasCorpus) return [];
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".onnx")) found.push(path.relative(CORPUS_DIR, full));
    }
  };
  walk(CORPUS_DIR);
  return found.sort();
}

export function isGraphOnly(relativePath: string): boolean {
  return GRAPH_ONLY.some((folder) => relativePath.startsWith(folder + path.sep));
}

/** Maps PEFT's `base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight` to peftc's `layers.0.attn.q.lora_A`. */
export function peftcLoraName(peftName: string): string {
  const match = /layers\.(\d+)\.self_attn\.(q|v)_proj\.lora_(A|B)/.exec(peftName)!;
  return `layers.${match[1]}.attn.${match[2]}.lora_${match[3]}`;
}
