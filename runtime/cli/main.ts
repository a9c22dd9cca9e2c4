import { Command, CommanderError } from "commander";
import { isPeftcError } from "../../compiler/errors";
import { registerCompile } from "./compile";
import { registerDemo } from "./demo";
import { registerExportAdapter } from "./export-adapter";
import { registerGenerate } from "./generate";
import { registerInspect } from "./inspect";
import { registerEval, registerTrain } from "./train";
import { peftcVersion } from "../../compiler/version";

/** Output streams of the CLI; tests pass buffers instead of the process streams. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * Makes the process exit quietly with status 0 when the reader of `stream`
 * goes away, as in `peftc inspect MODEL --json | head`, the way Unix tools
 * stop on a closed pipe. Other stream errors stay uncaught exceptions.
 */
export function exitOnBrokenPipe(stream: NodeJS.EventEmitter, exit: (status: number) => void = (status) => process.exit(status)): void {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    exit(0);
  });
}

/** Exit status for bad arguments and bad input files, so scripts can tell them from crashes (1). */
export const EXIT_USAGE = 2;

function buildProgram(io: CliIo): Command {
  const program = new Command("peftc")
    .description("Ahead-of-time compiler for parameter-efficient fine-tuning of ONNX transformer graphs.")
    .version(peftcVersion())
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)");
  registerInspect(program, io);
  registerCompile(program, io);
  registerExportAdapter(program, io);
  registerTrain(program, io);
  registerEval(program, io);
  registerGenerate(program, io);
  registerDemo(program, io);
  for (const command of program.commands) command.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  return program;
}

/** Runs the CLI on `argv` (without the node and script entries) and returns the exit status. */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      const success = error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.code === "commander.help";
      return success ? 0 : EXIT_USAGE;
    }
    if (isPeftcError(error)) {
      io.stderr(`peftc: ${error.message}\n`);
      return EXIT_USAGE;
    }
    io.stderr(`peftc: internal error, please report it with the command you ran:\n${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
