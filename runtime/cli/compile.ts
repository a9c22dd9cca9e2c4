import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "commander";
import { PeftcError } from "../../compiler/errors";
import type { CliIo } from "./main";

interface CompileCommandOptions {
  spec?: string;
  out: string;
  adapter?: string;
  types?: string[];
  typeCheck: boolean;
  params?: string;
}

/**
 * Returns the model's module declarations that a spec is checked against:
 * those given with --types, or else `<model>.d.ts` beside the model (what
 * `peftc inspect MODEL --emit-types MODEL.d.ts` writes), when it exists.
 */
function typesFilesFor(modelPath: string, given: string[] | undefined): string[] {
  for (const file of given ?? []) {
    if (!/\.d\.[mc]?ts$/.test(file)) {
      throw new PeftcError("E_SPEC_LOAD", `--types ${file} is not a declaration file: it must end in .d.ts (or .d.mts, .d.cts). Write one with \`peftc inspect MODEL --emit-types MODEL.d.ts\`.`, { file });
    }
  }
  if (given && given.length > 0) return given;
  const sibling = path.join(path.dirname(modelPath), `${path.basename(modelPath, path.extname(modelPath))}.d.ts`);
  return fs.existsSync(sibling) ? [sibling] : [];
}

/** Adds `peftc compile MODEL --spec SPEC --out DIR`. */
export function registerCompile(program: Command, io: CliIo): void {
  program
    .command("compile")
    .description(
      "Apply a PEFT spec to a model and write an artifact folder: eval.onnx (loss and logits), grad.onnx (gradients), " +
        "train.onnx (one optimizer step), apply.onnx (a step from accumulated gradients), infer.onnx (KV-cached generation, decoders only), " +
        "prefix.onnx (prefix tuning with a projection: the prefixes infer.onnx reads, computed from the trained tensors), params.safetensors (initial trainable tensors), manifest.json and model.d.ts. Frozen weights in external data are hard-linked, not copied.",
    )
    .argument("<model>", "path to an .onnx file (its external data files must sit in the same folder)")
    .option("--spec <file>", "TypeScript spec whose default export is defineSpec({...}); required unless --adapter is given")
    .requiredOption("--out <dir>", "artifact folder to write; an existing one is replaced only if it is empty or an earlier peftc output")
    .option("--adapter <dir>", "Hugging Face PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) whose tensors start the graph; alone, its config is the spec")
    .option("--params <file>", "params.safetensors or a checkpoint from peftc train whose tensors replace the initial values; with inference.mergeAdapters, infer.onnx folds these trained values in")
    .option("--types <file...>", "module declarations (.d.ts) to type-check the spec against (default: <model>.d.ts beside the model, if present)")
    .option("--no-type-check", "run the spec without type-checking it first (faster; type errors then surface as run-time errors)")
    .action(async (modelPath: string, options: CompileCommandOptions) => {
      // ts-morph and the compiler load only when this command runs, so `peftc inspect` stays fast.
      const { loadSpec } = await import("../../compiler/dsl/load");
      const { compileArtifacts } = await import("../../compiler/emit/compile");
      const { formatWarning } = await import("../../compiler/dsl/match");
      const loaded = options.spec ? loadSpec(options.spec, { typesFiles: typesFilesFor(modelPath, options.types), typeCheck: options.typeCheck }) : null;
      const result = compileArtifacts({
        modelFile: modelPath,
        outDir: options.out,
        spec: loaded?.spec ?? null,
        specFile: loaded?.file ?? null,
        adapterDir: options.adapter ?? null,
        paramsFile: options.params ?? null,
        relocate: loaded ? (error) => loaded.relocate(error) : undefined,
      });
      for (const warning of result.warnings) {
        // A raw call site may point at the call's parenthesis; locate moves it to the callee's name, as errors are.
        const site = warning.site && loaded ? (loaded.locate(warning.site) ?? warning.site) : warning.site;
        io.stderr(`${formatWarning({ ...warning, site })}\n`);
      }
      io.stdout(`${result.manifest.summary.line}\n`);
      const placed = result.manifest.externalData.map((file) => `${file.location} (${file.placement === "hardlink" ? "hard link" : "copy"})`);
      io.stdout(`wrote ${result.outDir}: ${result.files.filter((file) => !result.manifest.externalData.some((data) => data.location === file)).join(", ")}\n`);
      if (placed.length > 0) io.stdout(`base weights: ${placed.join(", ")}\n`);
    });
}
