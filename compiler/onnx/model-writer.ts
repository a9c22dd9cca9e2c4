import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import { DataType, isFloatType } from "./dtype";
import { ExternalDataSink } from "./model-file";
import { ModelProto, TensorProto } from "./proto";
import { writeModelProtoStreaming } from "./stream-writer";
import { Tensor } from "./tensor";

/**
 * onnxruntime reads small integer initializers (Reshape targets, Range
 * bounds, axes) while it resolves the graph, and cannot take them from
 * external data. Integer and bool tensors under this size stay inline.
 */
const MIN_EXTERNAL_NON_FLOAT_BYTES = 1024;

export interface WriteOptions {
  /**
   * Initializers of at least this many bytes go to an external data file
   * named `<model file name>.data` next to the model. Without it, new
   * tensors stay inline, and protobuf caps a single file at 2 GiB. Empty
   * tensors and integer tensors under 1 KiB stay inline whatever the value.
   */
  externalDataThreshold?: number;
  /** Name of the external data file, relative to the model's folder; an existing file of that name is replaced. */
  externalDataLocation?: string;
  /**
   * What happens to weights that already live in external data: "keep"
   * references their file (the caller places it next to the model),
   * "inline" copies them into the model file. Without a threshold the
   * default is "keep". With a threshold they are rewritten into the new
   * data file unless "keep" is given, which then writes only the other
   * tensors there, such as merged weights.
   */
  existingExternalData?: "keep" | "inline";
}

/** Streams tensors into one external data file, each at an offset aligned to 64 bytes for mmap-friendly reads. */
class ExternalDataFile {
  private descriptor: number | undefined;
  private offset = 0;
  /** Offset and length of each appended tensor, to rebind tensors once the file is in place. */
  readonly placed: { tensor: Tensor; offset: number; length: number }[] = [];

  constructor(
    readonly filePath: string,
    readonly location: string,
  ) {
    this.descriptor = fs.openSync(filePath, "w");
  }

  append(tensor: Tensor): TensorProto["externalData"] {
    const padding = (64 - (this.offset % 64)) % 64;
    if (padding) this.write(new Uint8Array(padding));
    const start = this.offset;
    this.write(tensor.bytes());
    this.placed.push({ tensor, offset: start, length: this.offset - start });
    return [
      { key: "location", value: this.location },
      { key: "offset", value: String(start) },
      { key: "length", value: String(this.offset - start) },
    ];
  }

  private write(bytes: Uint8Array): void {
    let done = 0;
    if (this.descriptor === undefined) throw new Error(`bug: ${this.filePath} written after close`);
    while (done < bytes.byteLength) done += fs.writeSync(this.descriptor, bytes, done, bytes.byteLength - done);
    this.offset += bytes.byteLength;
  }

  close(): void {
    if (this.descriptor !== undefined) fs.closeSync(this.descriptor);
    this.descriptor = undefined;
  }
}

function goesExternal(tensor: Tensor, threshold: number): boolean {
  const bytes = tensor.byteLength;
  if (bytes === 0 || bytes < threshold) return false;
  return isFloatType(tensor.dtype as DataType) || bytes >= MIN_EXTERNAL_NON_FLOAT_BYTES;
}

/** Rejects an external data location that would land outside the model's folder or on the model itself. */
function checkOutputLocation(location: string, filePath: string): void {
  const folder = path.dirname(path.resolve(filePath));
  const target = path.resolve(folder, location);
  const relative = path.relative(folder, target);
  const problem =
    path.isAbsolute(location) || path.win32.isAbsolute(location)
      ? "is an absolute path"
      : relative === "" || relative === ".." || relative.startsWith(`..${path.sep}`)
        ? "leaves the model's folder"
        : target === path.resolve(filePath)
          ? "is the model file itself"
          : undefined;
  if (problem) {
    throw new PeftcError(
      "E_EXTERNAL_DATA_PATH",
      `${filePath}: external data location "${location}" ${problem}; onnxruntime could not read it. Use a plain file name such as "${path.basename(filePath)}.data".`,
      { file: filePath },
    );
  }
}

function realPathOrUndefined(file: string): string | undefined {
  try {
    return fs.realpathSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Writes `build(sink)` to `filePath` atomically: the model and its data file
 * are written under temporary names and renamed only once both are complete,
 * so a failure never leaves a half-written model behind. When the save
 * replaces a data file that tensors of the model were read from, those
 * tensors are rebound to the new file (or to memory, if they went inline).
 */
export function writeModelFile(filePath: string, build: (sink: ExternalDataSink | undefined) => ModelProto, options: WriteOptions = {}): void {
  const folder = path.dirname(path.resolve(filePath));
  const location = options.externalDataLocation ?? `${path.basename(filePath)}.data`;
  const threshold = options.externalDataThreshold;
  if (threshold !== undefined) {
    if (!(threshold >= 0)) throw new PeftcError("E_ONNX_INVALID", `external data threshold ${threshold} is not a byte count; pass 0 or more.`);
    checkOutputLocation(location, filePath);
  }
  fs.mkdirSync(folder, { recursive: true });
  const suffix = `.tmp-${process.pid}-${Date.now()}`;
  const modelTemp = filePath + suffix;
  const dataPath = path.join(folder, location);
  const dataTemp = dataPath + suffix;
  const replaced = realPathOrUndefined(dataPath);

  const inlined: { tensor: Tensor; bytes: Uint8Array }[] = [];
  let dataFile: ExternalDataFile | undefined;
  try {
    let sink: ExternalDataSink | undefined;
    if (threshold === undefined && options.existingExternalData === "inline") {
      sink = { append: () => undefined };
    }
    if (threshold !== undefined) {
      const file = (dataFile = new ExternalDataFile(dataTemp, location));
      sink = {
        keepsExisting: options.existingExternalData === "keep",
        append: (tensor) => {
          if (goesExternal(tensor, threshold)) return file.append(tensor);
          const source = tensor.source;
          if (source.kind === "external" && source.ref.path === replaced) inlined.push({ tensor, bytes: tensor.bytes() });
          return undefined;
        },
      };
    }
    const proto = build(sink);

    const descriptor = fs.openSync(modelTemp, "w");
    try {
      writeModelProtoStreaming(descriptor, proto, filePath);
    } finally {
      fs.closeSync(descriptor);
    }
    if (dataFile) {
      dataFile.close();
      if (dataFile.placed.length > 0) fs.renameSync(dataTemp, dataPath);
      else fs.rmSync(dataTemp, { force: true });
    }
    fs.renameSync(modelTemp, filePath);
  } catch (error) {
    dataFile?.close();
    for (const temp of [modelTemp, dataTemp]) fs.rmSync(temp, { force: true });
    throw error;
  }
  if (replaced !== undefined) rebindReplaced(replaced, dataFile, inlined);
}

/** Points tensors that read the replaced data file at their new home. */
function rebindReplaced(replaced: string, dataFile: ExternalDataFile | undefined, inlined: { tensor: Tensor; bytes: Uint8Array }[]): void {
  for (const { tensor, bytes } of inlined) tensor.rebind({ kind: "raw", bytes });
  if (!dataFile) return;
  const newPath = fs.realpathSync(path.join(path.dirname(dataFile.filePath), dataFile.location));
  for (const { tensor, offset, length } of dataFile.placed) {
    const source = tensor.source;
    if (source.kind !== "external" || source.ref.path !== replaced) continue;
    tensor.rebind({ kind: "external", ref: { location: dataFile.location, path: newPath, offset, length, missing: false } });
  }
}
