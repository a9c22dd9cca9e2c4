import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";

/** Name of the manifest that marks a folder as peftc's own output, which a new compile may replace. */
const MANIFEST = "manifest.json";

/**
 * Runs `write` on an empty staging folder beside `outDir`, then moves the
 * result to `outDir` in one rename. An existing `outDir` is replaced only
 * when it is empty or an earlier artifact folder (it has a peftc manifest),
 * so a typo in `--out` cannot delete a user's folder. On any error the
 * staging folder is removed and `outDir` stays as it was.
 */
export function withStagingFolder(outDir: string, write: (staging: string) => void): void {
  const target = path.resolve(outDir);
  checkReplaceable(target);
  const parent = path.dirname(target);
  try {
    fs.mkdirSync(parent, { recursive: true });
  } catch (error) {
    throw new PeftcError("E_OUTPUT_PATH", `cannot create the folder ${parent}: ${(error as Error).message}. Choose an --out folder you can write to.`, { file: parent });
  }
  const staging = fs.mkdtempSync(path.join(parent, `.${path.basename(target)}.staging-`));
  // mkdtemp creates the folder private (0700); the artifacts get the permissions of any new folder.
  const umask = process.umask();
  fs.chmodSync(staging, 0o777 & ~umask);
  try {
    write(staging);
    replaceFolder(staging, target);
  } catch (error) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

function checkReplaceable(target: string): void {
  let entries: string[];
  try {
    if (!fs.statSync(target).isDirectory()) {
      throw new PeftcError("E_OUTPUT_PATH", `--out ${target} is a file, not a folder. Choose a folder name.`, { file: target });
    }
    entries = fs.readdirSync(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  if (entries.length === 0 || isArtifactFolder(target)) return;
  throw new PeftcError(
    "E_OUTPUT_PATH",
    `--out ${target} is a folder with other files in it (not an earlier peftc output, which has a peftc manifest.json). Choose a new or empty folder, so nothing of yours is replaced.`,
    { file: target },
  );
}

function isArtifactFolder(folder: string): boolean {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, MANIFEST), "utf8")) as { format?: unknown };
    return manifest.format === "peftc.artifacts";
  } catch {
    return false;
  }
}

/** Moves `staging` to `target`, replacing an existing `target` folder; the old one is removed only after the new one is in place. */
function replaceFolder(staging: string, target: string): void {
  if (!fs.existsSync(target)) {
    fs.renameSync(staging, target);
    return;
  }
  const old = `${staging}.previous`;
  fs.renameSync(target, old);
  try {
    fs.renameSync(staging, target);
  } catch (error) {
    fs.renameSync(old, target);
    throw error;
  }
  fs.rmSync(old, { recursive: true, force: true });
}
