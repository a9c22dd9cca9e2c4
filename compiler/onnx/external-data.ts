import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import { StringStringEntryProto, TensorProto } from "./proto";

/** Location of one tensor's bytes in an external data file. */
export interface ExternalDataRef {
  /** The location as written in the model, relative to the model's folder. */
  location: string;
  /** Absolute path of the file after resolving symlinks. */
  path: string;
  offset: number;
  length: number;
  /** True when the file was not found and the caller allowed that (graph-only models). */
  missing: boolean;
}

export interface ExternalDataContext {
  /** Folder that external locations are relative to: the model file's folder. */
  baseDir: string;
  /** Model file named in error messages. */
  modelPath: string;
  /** Accept a missing data file (inspect a graph whose weights were not shipped). */
  allowMissing: boolean;
}

function entry(entries: StringStringEntryProto[], key: string): string | undefined {
  return entries.find((item) => item.key === key)?.value;
}

function parseNonNegativeInteger(text: string | undefined, what: string, context: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new PeftcError("E_EXTERNAL_DATA_RANGE", `${context}: external data ${what} "${text}" is not a non-negative integer.`);
  }
  return Number(text);
}

/**
 * Resolves a location the way onnxruntime 1.31 does on Linux and rejects
 * what it rejects: an absolute path, a path that leaves the model's folder,
 * a symlink that resolves outside it, and anything but a regular file.
 * Following such a path would let a model read any file on the machine.
 * A backslash is part of a file name, not a separator, as on any POSIX
 * system. A symlink may resolve into the real folder of a symlinked model
 * file, which is how the Hugging Face cache links snapshots to blobs.
 */
export function resolveExternalLocation(location: string, context: ExternalDataContext, what: string): { path: string; exists: boolean } {
  const fix = "Keep external data files in the model's folder and name them by a relative path.";
  const fail = (problem: string): never => {
    throw new PeftcError("E_EXTERNAL_DATA_PATH", `${what}: external data location ${problem}. ${fix}`, { file: context.modelPath });
  };
  if (location.length === 0 || location.includes("\0")) fail("is empty or contains a NUL character");
  if (path.isAbsolute(location) || path.win32.isAbsolute(location)) fail(`"${location}" is an absolute path`);

  const folder = fs.realpathSync(context.baseDir);
  const joined = path.resolve(folder, location);
  if (joined === folder) fail(`"${location}" names the model's folder, not a file`);
  if (!isInside(folder, joined)) fail(`"${location}" leaves the model's folder ${folder}`);
  if (!fs.existsSync(joined)) return { path: joined, exists: false };

  const real = fs.realpathSync(joined);
  const roots = [folder, modelFileFolder(context.modelPath)];
  if (!roots.some((root) => root !== undefined && isInside(root, real))) fail(`"${location}" is a symlink to ${real}, outside the model's folder ${folder}`);
  if (!fs.statSync(real).isFile()) fail(`"${location}" is not a regular file (a folder, pipe or device)`);
  return { path: real, exists: true };
}

/** Returns the real folder of the model file, which differs from its given folder when the file is a symlink. */
function modelFileFolder(modelPath: string): string | undefined {
  try {
    return path.dirname(fs.realpathSync(modelPath));
  } catch {
    return undefined;
  }
}

function isInside(folder: string, candidate: string): boolean {
  const relative = path.relative(folder, candidate);
  return relative !== "" && relative !== ".." && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

/**
 * Parses and checks a tensor's external_data entries without reading the
 * bytes: only the file size is looked at, so huge models load instantly.
 */
export function parseExternalData(tensor: TensorProto, expectedBytes: number, context: ExternalDataContext): ExternalDataRef {
  const what = `${context.modelPath}: initializer "${tensor.name ?? ""}"`;
  const entries = tensor.externalData ?? [];
  const location = entry(entries, "location");
  if (location === undefined) {
    throw new PeftcError("E_EXTERNAL_DATA_PATH", `${what}: data_location is EXTERNAL but external_data has no "location" entry. Re-export the model.`, {
      file: context.modelPath,
    });
  }
  const offset = parseNonNegativeInteger(entry(entries, "offset"), "offset", what) ?? 0;
  const length = parseNonNegativeInteger(entry(entries, "length"), "length", what);
  if (length !== undefined && length !== expectedBytes) {
    throw new PeftcError(
      "E_EXTERNAL_DATA_RANGE",
      `${what}: external data length ${length} does not match the ${expectedBytes} bytes its type and shape need. Re-export the model.`,
      { file: context.modelPath },
    );
  }

  const resolved = resolveExternalLocation(location, context, what);
  if (!resolved.exists) {
    if (context.allowMissing) return { location, path: resolved.path, offset, length: expectedBytes, missing: true };
    throw new PeftcError(
      "E_EXTERNAL_DATA_MISSING",
      `${what}: external data file "${location}" not found next to the model (looked for ${resolved.path}). Copy the data file into the model's folder; without it, "peftc inspect --graph-only" can still list the graph's modules, but compiling needs the weights.`,
      { file: context.modelPath },
    );
  }
  const fileSize = fs.statSync(resolved.path).size;
  if (offset + expectedBytes > fileSize) {
    throw new PeftcError(
      "E_EXTERNAL_DATA_RANGE",
      `${what}: external data range [${offset}, ${offset + expectedBytes}) runs past the end of "${location}" (${fileSize} bytes). The data file is truncated or belongs to another model.`,
      { file: context.modelPath },
    );
  }
  return { location, path: resolved.path, offset, length: expectedBytes, missing: false };
}

/** Reads one tensor's bytes from its external data file. */
export function readExternalData(ref: ExternalDataRef, tensorName: string): Uint8Array {
  if (ref.missing) {
    throw new PeftcError(
      "E_EXTERNAL_DATA_MISSING",
      `initializer "${tensorName}": its external data file "${ref.location}" is missing (${ref.path}), so its values cannot be read. Copy the data file next to the model.`,
    );
  }
  const bytes = new Uint8Array(ref.length);
  const descriptor = fs.openSync(ref.path, "r");
  try {
    let done = 0;
    while (done < ref.length) {
      const read = fs.readSync(descriptor, bytes, done, ref.length - done, ref.offset + done);
      if (read === 0) {
        throw new PeftcError("E_EXTERNAL_DATA_RANGE", `initializer "${tensorName}": "${ref.path}" ended after ${done} of ${ref.length} bytes.`);
      }
      done += read;
    }
  } finally {
    fs.closeSync(descriptor);
  }
  return bytes;
}
