import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import { DataType, dataTypeName } from "../onnx/dtype";
import { Tensor, arrayTypeFor } from "../onnx/tensor";

/**
 * Reader and writer for the safetensors format. A file is an 8-byte
 * little-endian header length N, then N bytes of JSON, then the data
 * section. The JSON maps each tensor name to its dtype, shape and
 * [begin, end) byte range in the data section, and its optional
 * "__metadata__" entry is an object of string values.
 */

/** safetensors dtype names and the ONNX types they decode to. */
const DTYPES: Record<string, DataType> = {
  F64: DataType.DOUBLE,
  F32: DataType.FLOAT,
  F16: DataType.FLOAT16,
  BF16: DataType.BFLOAT16,
  I64: DataType.INT64,
  I32: DataType.INT32,
  I16: DataType.INT16,
  I8: DataType.INT8,
  U64: DataType.UINT64,
  U32: DataType.UINT32,
  U16: DataType.UINT16,
  U8: DataType.UINT8,
  BOOL: DataType.BOOL,
};

/** Element sizes in bytes, by safetensors dtype name. */
const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** dtypes the format defines that this reader does not decode. */
const UNSUPPORTED_DTYPES = new Set(["F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"]);

/** The header size limit of the Rust safetensors crate (MAX_HEADER_SIZE), which rejects larger headers to bound memory use. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";

/** Tensors and string metadata of one safetensors file. */
export interface SafetensorsContent {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Returns the safetensors dtype name of an ONNX type. Throws E_SAFETENSORS for a type that the writer does not support. */
export function safetensorsDtype(dtype: DataType, tensorName: string): string {
  for (const [name, onnxType] of Object.entries(DTYPES)) {
    if (onnxType === dtype) return name;
  }
  throw new PeftcError(
    "E_SAFETENSORS",
    `tensor "${tensorName}" has type ${dataTypeName(dtype)}, which safetensors files written by peftc cannot hold. Cast it to float32, float16, bfloat16, float64, an integer type or bool first.`,
    { tensor: tensorName },
  );
}

/**
 * Encodes tensors as a safetensors file, returned as chunks to write in
 * order. The output is deterministic. Header keys and data follow sorted
 * key order (by UTF-16 code unit), and metadata keys are sorted. The header
 * is padded with spaces to a multiple of 8 bytes, as the Rust crate does, so
 * the data section starts aligned.
 */
export function encodeSafetensors(tensors: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array[] {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  const metadataKeys = Object.keys(metadata).sort();
  if (metadataKeys.length > 0) {
    const sorted: Record<string, string> = {};
    for (const key of metadataKeys) {
      const value = metadata[key];
      if (typeof value !== "string") {
        throw new PeftcError("E_SAFETENSORS", `safetensors metadata "${key}" is ${typeof value}, but metadata values must be strings.`);
      }
      sorted[key] = value;
    }
    header[METADATA_KEY] = sorted;
  }

  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY) {
      throw new PeftcError("E_SAFETENSORS", `a tensor cannot be named "${METADATA_KEY}": safetensors reserves that key for metadata. Rename the tensor.`);
    }
    const tensor = tensors.get(name)!;
    const dtype = safetensorsDtype(tensor.dtype, name);
    const bytes = tensor.bytes();
    const expected = tensor.size * DTYPE_BYTES[dtype];
    if (bytes.byteLength !== expected) {
      throw new PeftcError("E_SAFETENSORS", `tensor "${name}" has ${bytes.byteLength} bytes, but ${dtype}[${tensor.dims.join(", ")}] needs ${expected}.`, { tensor: name });
    }
    header[name] = { dtype, shape: [...tensor.dims], data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }

  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padding = (8 - (json.byteLength % 8)) % 8;
  const headerBytes = Buffer.alloc(8 + json.byteLength + padding, 0x20);
  headerBytes.writeBigUInt64LE(BigInt(json.byteLength + padding), 0);
  json.copy(headerBytes, 8);
  return [headerBytes, ...chunks];
}

/**
 * Writes `chunks` to `file` atomically: into a temporary file in the same
 * folder, flushed to disk, then renamed over `file`. On failure the
 * temporary file is removed and `file` keeps its old content.
 */
export function writeFileAtomic(file: string, chunks: readonly Uint8Array[]): void {
  const temp = temporaryPath(file);
  try {
    writeChunks(temp, chunks);
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
}

/** Returns a fresh temporary name next to `file`, for a write that is renamed into place. */
export function temporaryPath(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`);
}

/** Writes `chunks` to a new file and flushes it to disk. */
export function writeChunks(file: string, chunks: readonly Uint8Array[]): void {
  const descriptor = fs.openSync(file, "wx");
  try {
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.byteLength) done += fs.writeSync(descriptor, chunk, done, chunk.byteLength - done);
    }
    fs.fsyncSync(descriptor);
  } finally {
    fs.closeSync(descriptor);
  }
}

/** Writes tensors to a safetensors file atomically, in the layout of `encodeSafetensors`. */
export function writeSafetensors(file: string, tensors: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): void {
  const chunks = encodeSafetensors(tensors, metadata);
  try {
    writeFileAtomic(file, chunks);
  } catch (error) {
    if (error instanceof PeftcError) throw error;
    throw new PeftcError("E_OUTPUT_PATH", `cannot write ${file}: ${(error as Error).message}. Check that the folder exists and is writable.`, { file });
  }
}

/** Reads and validates a safetensors file, decoding every tensor into memory. */
export function readSafetensors(file: string): SafetensorsContent {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new PeftcError("E_FILE_NOT_FOUND", `${file} not found. Check the path.`, { file });
    throw new PeftcError("E_SAFETENSORS", `cannot read ${file}: ${(error as Error).message}`, { file });
  }
  return parseSafetensors(bytes, file);
}

/** One tensor entry of a parsed header. */
interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Decodes and validates safetensors bytes, naming `file` in errors. It
 * rejects a header length past the end of the file or over
 * MAX_HEADER_BYTES, and a header that is not a JSON object. It also rejects
 * an unknown dtype and a byte range whose length does not match its dtype
 * and shape. Finally, the byte ranges must tile the data section exactly,
 * with no gap, overlap or trailing bytes, as the Rust crate requires.
 */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsContent {
  const fail = (problem: string, tensor?: string): never => {
    const where = tensor === undefined ? file : `${file}, tensor "${tensor}"`;
    throw new PeftcError("E_SAFETENSORS", `${where}: ${problem}`, { file, tensor });
  };
  const rewrite = "Write the file again with a safetensors library (for example safetensors.torch.save_file).";

  if (bytes.byteLength < 8) fail(`the file has ${bytes.byteLength} bytes, fewer than the 8-byte header length. It is not a safetensors file, or it was cut short.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(`the header length is ${headerLength} bytes, over the ${MAX_HEADER_BYTES}-byte limit. It is not a safetensors file, or it is corrupt.`);
  }
  const headerEnd = 8 + Number(headerLength);
  if (headerEnd > bytes.byteLength) {
    fail(`the header length is ${headerLength} bytes, but only ${bytes.byteLength - 8} bytes follow it. The file was cut short or is not a safetensors file.`);
  }

  const header = parseHeader(bytes.subarray(8, headerEnd), fail, rewrite);
  const metadata = parseMetadata(header[METADATA_KEY], fail);
  const entries = Object.keys(header)
    .filter((name) => name !== METADATA_KEY)
    .map((name) => parseEntry(name, header[name], fail));

  checkTiling(entries, bytes.byteLength - headerEnd, fail, rewrite);

  const tensors = new Map<string, Tensor>();
  const byName = [...entries].sort((a, b) => compareStrings(a.name, b.name));
  for (const entry of byName) {
    const data = bytes.subarray(headerEnd + entry.begin, headerEnd + entry.end);
    tensors.set(entry.name, decodeEntry(entry, data));
  }
  return { tensors, metadata };
}

type Fail = (problem: string, tensor?: string) => never;

function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

function parseHeader(headerBytes: Uint8Array, fail: Fail, rewrite: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    return fail(`the header is not valid UTF-8. ${rewrite}`);
  }
  // The Rust crate requires the header to start with "{", so padding may only follow the JSON.
  if (!text.startsWith("{")) fail(`the header does not start with "{", so it is not a safetensors JSON header. ${rewrite}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    return fail(`the header is not valid JSON (${(error as Error).message}). ${rewrite}`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) fail(`the header is not a JSON object. ${rewrite}`);
  return header as Record<string, unknown>;
}

function parseMetadata(value: unknown, fail: Fail): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) fail(`"${METADATA_KEY}" is not an object of strings.`);
  const metadata: Record<string, string> = {};
  for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
    if (typeof entry !== "string") fail(`"${METADATA_KEY}" entry "${key}" is ${JSON.stringify(entry)}, not a string.`);
    metadata[key] = entry as string;
  }
  return metadata;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function parseEntry(name: string, value: unknown, fail: Fail): HeaderEntry {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail("the header entry is not an object with dtype, shape and data_offsets.", name);
  const info = value as Record<string, unknown>;
  const dtype = info.dtype;
  if (typeof dtype !== "string") fail(`dtype is ${JSON.stringify(dtype)}, not a dtype name such as "F32".`, name);
  const dtypeName = dtype as string;
  if (UNSUPPORTED_DTYPES.has(dtypeName)) fail(`dtype ${dtypeName} is not supported by peftc. Convert the tensor to F32, F16 or BF16.`, name);
  if (DTYPES[dtypeName] === undefined) fail(`unknown dtype "${dtypeName}". Known dtypes: ${Object.keys(DTYPES).join(", ")}.`, name);

  const shape = info.shape;
  if (!Array.isArray(shape) || !shape.every(isCount)) fail(`shape is ${JSON.stringify(shape)}, not a list of non-negative integers.`, name);
  const offsets = info.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    fail(`data_offsets is ${JSON.stringify(offsets)}, not a pair [begin, end] of non-negative integers.`, name);
  }
  const [begin, end] = offsets as number[];
  if (end < begin) fail(`data_offsets [${begin}, ${end}] ends before it begins.`, name);

  const elements = (shape as number[]).reduce((product, dim) => product * dim, 1);
  const expected = elements * DTYPE_BYTES[dtypeName];
  if (!Number.isSafeInteger(expected)) fail(`shape [${(shape as number[]).join(", ")}] has too many elements to address.`, name);
  if (end - begin !== expected) {
    fail(`data_offsets [${begin}, ${end}] cover ${end - begin} bytes, but ${dtypeName}[${(shape as number[]).join(", ")}] needs ${expected}. The header and the data disagree, so the file is corrupt.`, name);
  }
  return { name, dtype: dtypeName, shape: shape as number[], begin, end };
}

/** Checks that the byte ranges, sorted by start, cover [0, dataLength) with no gap, overlap or trailing bytes. */
function checkTiling(entries: HeaderEntry[], dataLength: number, fail: Fail, rewrite: string): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const entry of sorted) {
    if (entry.begin < expected) fail(`data_offsets [${entry.begin}, ${entry.end}] overlap the previous tensor, which ends at ${expected}. ${rewrite}`, entry.name);
    if (entry.begin > expected) fail(`data_offsets [${entry.begin}, ${entry.end}] leave a gap: the previous tensor ends at ${expected}. ${rewrite}`, entry.name);
    if (entry.end > dataLength) {
      fail(`data_offsets [${entry.begin}, ${entry.end}] reach past the data section, which has ${dataLength} bytes. The file was cut short.`, entry.name);
    }
    expected = entry.end;
  }
  if (expected !== dataLength) fail(`the data section has ${dataLength} bytes, but the tensors cover only ${expected}. ${rewrite}`);
}

/** Copies the entry's bytes into an aligned typed array and wraps it in a Tensor. */
function decodeEntry(entry: HeaderEntry, data: Uint8Array): Tensor {
  const dtype = DTYPES[entry.dtype];
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  const probe = new Tensor(entry.name, dtype, entry.shape, { kind: "raw", bytes: copy });
  const values = probe.data();
  const ArrayType = arrayTypeFor(dtype);
  // data() returns a view of `copy` for plain types and a fresh Float32Array for 16-bit floats, and both are safe to keep.
  if (!(values instanceof ArrayType)) throw new Error(`bug: ${entry.dtype} decoded to ${values.constructor.name}`);
  return Tensor.fromArray(entry.name, dtype, entry.shape, values);
}
