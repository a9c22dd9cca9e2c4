import { Command } from "commander";
import { formatSummary } from "../../compiler/inspect/format";
import { summarizeModel } from "../../compiler/inspect/summary";
import { loadModel } from "../../compiler/ir/io";
import type { CliIo } from "./main";

interface InspectOptions {
  json?: boolean;
  graphOnly?: boolean;
}

/** Adds `peftc inspect MODEL`. */
export function registerInspect(program: Command, io: CliIo): void {
  program
    .command("inspect")
    .description("Print a model's producer, opsets, inputs and outputs, op counts, parameters and external data. Reads no weights.")
    .argument("<model>", "path to an .onnx file (its external data files must sit in the same folder)")
    .option("--json", "print the report as JSON instead of text")
    .option("--graph-only", "accept missing external data files and report them, for graphs shipped without weights")
    .action((modelPath: string, options: InspectOptions) => {
      const model = loadModel(modelPath, { allowMissingExternalData: options.graphOnly ?? false });
      const summary = summarizeModel(model, modelPath);
      io.stdout(options.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
    });
}
