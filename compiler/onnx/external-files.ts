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

/** An external data reference and whether a subgraph (If branch, generation decoder) reads it. */
export interface ExternalDataUse {
  ref: ExternalDataRef;
  inSubgraph: boolean;
}

/**
 * Makes every external data file that `uses` name available in `folder`
 * under its location. onnxruntime reads external data only from inside the
 * model's own folder, rejecting absolute paths, `..` and symlinks that leave
 * it. A model saved elsewhere therefore needs the file beside it.
 *
 * A hard link costs no space, but onnxruntime 1.31 rejects a data file with
 * more than one link when a subgraph's initializers are in it ("potential
 * hardlink attack"), in the copy and in the original alike. Files that a
 * subgraph reads are therefore copied. An existing, different file of the
 * same name is never replaced: it may belong to another model.
 */
export function placeExternalFiles(uses: Iterable<ExternalDataUse>, folder: string): PlacedExternalFile[] {
  const byLocation = new Map<string, ExternalDataUse>();
  for (const use of uses) {
    const seen = byLocation.get(use.ref.location);
    if (seen && seen.ref.path !== use.ref.path) {
      throw new PeftcError(
        "E_EXTERNAL_DATA_PATH",
        `two different external data files are both named "${use.ref.location}" (${seen.ref.path} and ${use.ref.path}); save with an external data threshold to merge them into one file.`,
      );
    }
    byLocation.set(use.ref.location, { ref: use.ref, inSubgraph: use.inSubgraph || (seen?.inSubgraph ?? false) });
  }
  const placed: PlacedExternalFile[] = [];
  for (const [location, { ref, inSubgraph }] of byLocation) {
    placed.push({ location, placement: placeOne(ref, path.join(folder, location), inSubgraph) });
  }
  return placed;
}

function placeOne(ref: ExternalDataRef, target: string, copy: boolean): PlacedExternalFile["placement"] {
  if (ref.missing) return "missing";
  if (fs.existsSync(target)) {
    if (sameFile(target, ref.path)) return "in-place";
    throw new PeftcError(
      "E_EXTERNAL_DATA_PATH",
      `${target} already exists and is not the model's data file ${ref.path}; it may belong to another model. Save into another folder, or with an external data threshold to write a new data file.`,
      { file: target },
    );
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const temp = `${target}.tmp-${process.pid}`;
  fs.rmSync(temp, { force: true });
  let placement: PlacedExternalFile["placement"] = copy ? "copy" : "hardlink";
  try {
    if (copy) fs.copyFileSync(ref.path, temp);
    else fs.linkSync(ref.path, temp);
  } catch (error) {
    if (copy) throw error;
    placement = "copy";
    fs.copyFileSync(ref.path, temp);
  }
  fs.renameSync(temp, target);
  return placement;
}

function sameFile(a: string, b: string): boolean {
  const statA = fs.statSync(a);
  const statB = fs.statSync(b);
  return statA.ino === statB.ino && statA.dev === statB.dev;
}
