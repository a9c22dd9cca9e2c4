import { Command } from "commander";
import { formatSummary } from "../../compiler/inspect/format";
import type { ModulesSummary } from "../../compiler/inspect/modules";
import { summarizeModel } from "../../compiler/inspect/summary";
import { loadModel } from "../../compiler/ir/io";
import type { CliIo } from "./main";

interface InspectOptions {
  json?: boolean;
  graphOnly?: boolean;
  emitTypes?: string;
}

/** Adds `peftc inspect MODEL`. */
export function registerInspect(program: Command, io: CliIo): void {
  program
    .command("inspect")
    .description(
      "Print a model's producer, opsets, inputs and outputs, module tree, op counts, parameters and external data. Reads no weights.",
    )
    .argument("<model>", "path to an .onnx file (its external data files must sit in the same folder)")
    .option("--json", "print the report as JSON instead of text")
    .option("--graph-only", "accept missing external data files and report them, for graphs shipped without weights")
    .option("--emit-types <file>", "also write TypeScript declarations of the module paths, roles and layer indices to this .d.ts file")
    .action(async (modelPath: string, options: InspectOptions) => {
      let writeTypes: ((modules: ModulesSummary) => void) | undefined;
      const typesFile = options.emitTypes;
      if (typesFile !== undefined) {
        // ts-morph loads the whole TypeScript compiler, so only this option pays for it.
        const { checkModuleTypesPath, writeModuleTypes } = await import("../../compiler/match/emit-types");
        checkModuleTypesPath(typesFile);
        writeTypes = (modules) => writeModuleTypes(typesFile, modules, modelPath);
      }

      const model = loadModel(modelPath, { allowMissingExternalData: options.graphOnly ?? false });
      const summary = summarizeModel(model, modelPath);
      writeTypes?.(summary.modules);
      io.stdout(options.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
    });
}
