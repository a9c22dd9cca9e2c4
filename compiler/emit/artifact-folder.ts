import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";

/** Name of the manifest that marks a folder as peftc's own output, which a new compile may replace. */
const MANIFEST = "manifest.json";

/** Files every artifact folder may contain besides the external data its manifest lists. */
const ARTIFACT_NAMES = ["eval.onnx", "grad.onnx", "train.onnx", "apply.onnx", "infer.onnx", "infer.onnx.data", "prefix.onnx", "params.safetensors", MANIFEST, "model.d.ts"];

/** Maximum number of unknown files an error names before it ends with "and N more". */
const LISTED_FILES = 5;

/**
 * Runs `write` on an empty staging folder beside `outDir`, then moves the
 * result to `outDir` in one rename. An existing `outDir` is replaced only
 * when it is empty, or when it is an earlier artifact folder (it has a
 * peftc manifest) that contains nothing but the artifacts its manifest
 * names. So neither a typo in `--out` nor a recompile deletes a user's
 * files. On any error the staging folder is removed and `outDir` stays as
 * it was.
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
  if (entries.length === 0) return;
  const manifest = readArtifactManifest(target);
  if (!manifest) {
    throw new PeftcError(
      "E_OUTPUT_PATH",
      `--out ${target} is a folder with other files in it (not an earlier peftc output, which has a peftc manifest.json). Choose a new or empty folder, so nothing of yours is replaced.`,
      { file: target },
    );
  }
  const unknown = unknownFiles(target, manifest);
  if (unknown.length === 0) return;
  const listed = unknown.slice(0, LISTED_FILES).join(", ") + (unknown.length > LISTED_FILES ? `, and ${unknown.length - LISTED_FILES} more` : "");
  throw new PeftcError(
    "E_OUTPUT_PATH",
    `--out ${target} is an earlier peftc output, but it also contains files that are not its artifacts (${listed}), which replacing the folder would delete. Move those files elsewhere, or choose a new --out folder.`,
    { file: target },
  );
}

/** Reads the manifest of an earlier artifact folder; undefined when `folder` has no peftc manifest. */
function readArtifactManifest(folder: string): { externalData?: unknown } | undefined {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, MANIFEST), "utf8")) as { format?: unknown; externalData?: unknown };
    return manifest.format === "peftc.artifacts" ? manifest : undefined;
  } catch {
    return undefined;
  }
}

/** Lists, sorted, the files under `folder` that are neither artifacts nor external data its manifest names, as paths relative to `folder`. */
function unknownFiles(folder: string, manifest: { externalData?: unknown }): string[] {
  const known = new Set(ARTIFACT_NAMES);
  if (Array.isArray(manifest.externalData)) {
    for (const entry of manifest.externalData) {
      const location = (entry as { location?: unknown } | null)?.location;
      if (typeof location === "string") known.add(path.normalize(location));
    }
  }
  const unknown: string[] = [];
  const walk = (relative: string): void => {
    for (const entry of fs.readdirSync(path.join(folder, relative), { withFileTypes: true })) {
      const name = path.join(relative, entry.name);
      if (entry.isDirectory()) walk(name);
      else if (!known.has(name)) unknown.push(name);
    }
  };
  walk("");
  return unknown.sort();
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
