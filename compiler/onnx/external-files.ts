import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import { ExternalDataRef } from "./external-data";

/** Placement of one external data file in the folder of a saved model. */
export interface PlacedExternalFile {
  location: string;
  /** "in-place": already there. "hardlink" or "copy": placed now. "missing": the source file never existed. */
  placement: "in-place" | "hardlink" | "copy" | "missing";
}

/**
 * Makes every external data file that `refs` name available in `folder`
 * under its location. onnxruntime reads external data only from inside the
 * model's own folder, rejecting absolute paths, `..` and symlinks that leave
 * it. A model saved elsewhere therefore needs the file beside it: a hard
 * link where the file system allows it, else a copy.
 */
export function placeExternalFiles(refs: Iterable<ExternalDataRef>, folder: string): PlacedExternalFile[] {
  const byLocation = new Map<string, ExternalDataRef>();
  for (const ref of refs) {
    const seen = byLocation.get(ref.location);
    if (seen && seen.path !== ref.path) {
      throw new PeftcError(
        "E_EXTERNAL_DATA_PATH",
        `two different external data files are both named "${ref.location}" (${seen.path} and ${ref.path}); save with an external data threshold to merge them into one file.`,
      );
    }
    byLocation.set(ref.location, ref);
  }
  const placed: PlacedExternalFile[] = [];
  for (const [location, ref] of byLocation) {
    if (ref.missing) {
      placed.push({ location, placement: "missing" });
      continue;
    }
    const target = path.join(folder, location);
    if (fs.existsSync(target) && sameFile(target, ref.path)) {
      placed.push({ location, placement: "in-place" });
      continue;
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const temp = `${target}.tmp-${process.pid}`;
    fs.rmSync(temp, { force: true });
    let placement: PlacedExternalFile["placement"] = "hardlink";
    try {
      fs.linkSync(ref.path, temp);
    } catch {
      placement = "copy";
      fs.copyFileSync(ref.path, temp);
    }
    fs.renameSync(temp, target);
    placed.push({ location, placement });
  }
  return placed;
}

function sameFile(a: string, b: string): boolean {
  const statA = fs.statSync(a);
  const statB = fs.statSync(b);
  return statA.ino === statB.ino && statA.dev === statB.dev;
}
