import * as fs from "node:fs";
import * as path from "node:path";
import { evalLoss, runPeftc } from "./cli";

/** `count` JSONL rows of short robot weather reports, a text style the aidreams260K base model never saw, starting at report `offset`. */
export function robotReports(count: number, offset: number): string {
  const colors = ["purple", "silver", "amber", "green", "cobalt", "scarlet"];
  const things = ["rain", "snow", "fog", "wind", "hail", "sun"];
  return Array.from({ length: count }, (_, i) => {
    const k = i + offset;
    return JSON.stringify({ text: `Robot report ${k % 7}: ${colors[k % colors.length]} ${things[(k * 5) % things.length]} over the quiet server farm.` });
  }).join("\n");
}

/** Held-out losses around one `peftc train` run, and the parameter file it wrote. */
export interface ReportTraining {
  before: number;
  after: number;
  params: string;
}

/**
 * Trains the artifact folder `out` with `peftc train` for 30 steps of batch
 * 8 on 48 robot reports, and evaluates 12 other reports with `peftc eval`
 * before and after. Data and the run go to `work`, and `trainOptions` adds
 * options such as --lr. Expects every command to exit with status 0 and
 * training to print no error.
 */
export async function trainOnRobotReports(out: string, work: string, tokenizer: string, trainOptions: string[] = []): Promise<ReportTraining> {
  const train = path.join(work, "train.jsonl");
  const heldOut = path.join(work, "held-out.jsonl");
  fs.writeFileSync(train, robotReports(48, 0) + "\n");
  fs.writeFileSync(heldOut, robotReports(12, 100) + "\n");
  const before = await runPeftc("eval", out, "--data", heldOut, "--tokenizer", tokenizer);
  expect(before.status).toBe(0);
  const trained = await runPeftc("train", out, "--data", train, "--tokenizer", tokenizer, "--steps", "30", "--batch-size", "8", ...trainOptions, "--no-progress", "--out", path.join(work, "run"));
  expect(trained.stderr).not.toMatch(/error/i);
  expect(trained.status).toBe(0);
  const params = path.join(work, "run", "params.safetensors");
  const after = await runPeftc("eval", out, "--data", heldOut, "--tokenizer", tokenizer, "--params", params);
  expect(after.status).toBe(0);
  return { before: evalLoss(before.stdout), after: evalLoss(after.stdout), params };
}
