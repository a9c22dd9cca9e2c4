import { runCli } from "../../runtime/cli/main";

/** What one CLI run printed, and its exit status. */
export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the `peftc` command in-process on `argv` and captures its output. */
export async function runPeftc(...argv: string[]): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(argv, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { status, stdout, stderr };
}

/** Reads the loss from the output of `peftc eval`. */
export function evalLoss(stdout: string): number {
  const match = /loss[^0-9]*([0-9.]+)/i.exec(stdout);
  if (!match) throw new Error(`no loss in: ${stdout}`);
  return Number(match[1]);
}
