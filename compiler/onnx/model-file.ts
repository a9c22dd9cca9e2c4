import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import { DataType, byteLengthOf, dataTypeName } from "./dtype";
import { ExternalDataContext, parseExternalData } from "./external-data";
import { ModelProto, TensorProto, int64ToNumber } from "./proto";
import { ModelProtoType, TensorProtoType } from "./schema";
import { encodeModelProtoBytes } from "./stream-writer";
import { Tensor } from "./tensor";

/** Decodes a serialized ModelProto; `source` names the file or buffer in errors. */
export function decodeModelProto(bytes: Uint8Array, source: string): ModelProto {
  let proto: ModelProto;
  try {
    proto = ModelProtoType.decode(bytes) as unknown as ModelProto;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new PeftcError(
      "E_ONNX_PARSE",
      `${source}: not a valid ONNX model: the protobuf decoder failed (${reason}). The file may be truncated, still downloading, or not an ONNX file; re-export or re-download it.`,
      { file: source },
    );
  }
  if (!proto.graph) {
    throw new PeftcError("E_ONNX_PARSE", `${source}: not a valid ONNX model: it decodes but has no graph. Check that this is an .onnx model file.`, {
      file: source,
    });
  }
  const irVersion = int64ToNumber(proto.irVersion, "ir_version");
  if (irVersion <= 0 || irVersion > 64) {
    throw new PeftcError("E_ONNX_PARSE", `${source}: not a valid ONNX model: ir_version is ${irVersion}. Check that this is an .onnx model file.`, {
      file: source,
    });
  }
  return proto;
}

/** Protobuf refuses messages past 2 GiB, so no model file can be larger. */
const MAX_MODEL_FILE_BYTES = 2 ** 31 - 1;

/** Messages for the file system errors a user can cause with a bad path. */
const FILE_ERRORS: Record<string, string> = {
  ENOENT: "file not found",
  ENOTDIR: "file not found: a part of the path is not a folder",
  ENAMETOOLONG: "the file name is too long for the file system",
  ELOOP: "too many levels of symbolic links (a symlink loop?)",
  EACCES: "permission denied",
  EPERM: "permission denied",
};

/** Checks that `filePath` is a regular file of plausible size and returns its size. */
function checkModelFile(filePath: string): number {
  let stats: fs.Stats;
  try {
    stats = fs.statSync(filePath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    const reason = FILE_ERRORS[code] ?? `cannot be read (${code || String(error)})`;
    throw new PeftcError("E_FILE_NOT_FOUND", `${filePath}: ${reason}.`, { file: filePath });
  }
  if (stats.isDirectory()) {
    throw new PeftcError("E_FILE_NOT_FOUND", `${filePath}: is a folder; pass the .onnx file inside it.`, { file: filePath });
  }
  if (!stats.isFile()) {
    throw new PeftcError("E_FILE_NOT_FOUND", `${filePath}: not a regular file (a device, pipe or socket); pass an .onnx model file.`, { file: filePath });
  }
  if (stats.size > MAX_MODEL_FILE_BYTES) {
    throw new PeftcError(
      "E_ONNX_PARSE",
      `${filePath}: ${stats.size} bytes, past protobuf's 2 GiB limit, so this is not an .onnx model file. If it is an external data file, pass the .onnx file next to it.`,
      { file: filePath },
    );
  }
  return stats.size;
}

/** Reads and decodes a model file; tensors stay undecoded until asked for. */
export function readModelProto(filePath: string): ModelProto {
  checkModelFile(filePath);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(filePath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    throw new PeftcError("E_FILE_NOT_FOUND", `${filePath}: ${FILE_ERRORS[code] ?? `cannot be read (${code || String(error)})`}.`, { file: filePath });
  }
  return decodeModelProto(bytes, filePath);
}

/** Returns the shape of a TensorProto, checking each dim is a non-negative integer. */
export function tensorDims(proto: TensorProto, where: string): number[] {
  return (proto.dims ?? []).map((dim) => {
    const value = int64ToNumber(dim, `dimension of ${where}`);
    if (value < 0) throw new PeftcError("E_TENSOR_DATA", `${where}: negative dimension ${value} in an initializer shape.`);
    return value;
  });
}

/**
 * Wraps a TensorProto as a Tensor without decoding its values. External data
 * is located and range-checked here, so a broken reference fails at load time.
 */
export function tensorFromProto(proto: TensorProto, context?: ExternalDataContext): Tensor {
  const name = proto.name ?? "";
  const where = context ? `${context.modelPath}: tensor "${name}"` : `tensor "${name}"`;
  const dtype = (proto.dataType ?? 0) as DataType;
  if (dtype === DataType.UNDEFINED || DataType[dtype] === undefined) {
    throw new PeftcError("E_TENSOR_DATA", `${where}: data_type ${dtype} is not an ONNX tensor type.`);
  }
  const dims = tensorDims(proto, where);
  const count = dims.reduce((product, dim) => product * dim, 1);
  const expectedBytes = byteLengthOf(dtype, count);
  if (!Number.isSafeInteger(expectedBytes)) {
    throw new PeftcError("E_TENSOR_DATA", `${where}: shape [${dims.join(", ")}] needs more bytes than any file can hold; the file is corrupt.`);
  }
  const extras = { docString: proto.docString || undefined, metadataProps: proto.metadataProps?.length ? proto.metadataProps : undefined };

  if (proto.dataLocation === 1) {
    if (!context) throw new PeftcError("E_EXTERNAL_DATA_PATH", `${where}: uses external data but the model was loaded from a buffer; load it from its file.`);
    const ref = parseExternalData(proto, expectedBytes, context);
    return new Tensor(name, dtype, dims, { kind: "external", ref }, extras);
  }
  if (proto.rawData && proto.rawData.byteLength > 0) {
    if (proto.rawData.byteLength !== expectedBytes) {
      throw new PeftcError(
        "E_TENSOR_DATA",
        `${where}: raw_data has ${proto.rawData.byteLength} bytes but ${dataTypeName(dtype)}[${dims.join(", ")}] needs ${expectedBytes}. The file is corrupt or was written by a broken exporter.`,
      );
    }
    return new Tensor(name, dtype, dims, { kind: "raw", bytes: proto.rawData }, extras);
  }
  if (dtype === DataType.STRING || proto.segment) {
    throw new PeftcError("E_TENSOR_DATA", `${where}: ${dataTypeName(dtype)} tensors and segmented tensors are not supported in a transformer graph.`);
  }

  const stored = typedFieldLength(dtype, proto);
  if (stored !== undefined && stored !== count) {
    throw new PeftcError(
      "E_TENSOR_DATA",
      `${where}: ${stored} values stored but ${dataTypeName(dtype)}[${dims.join(", ")}] needs ${count}. The file is corrupt or was written by a broken exporter.`,
    );
  }
  return new Tensor(name, dtype, dims, { kind: "fields", proto }, extras);
}

/** Returns how many values the typed field for `dtype` stores, or undefined for types stored some other way. */
function typedFieldLength(dtype: DataType, proto: TensorProto): number | undefined {
  switch (dtype) {
    case DataType.FLOAT:
      return proto.floatData?.length ?? 0;
    case DataType.DOUBLE:
      return proto.doubleData?.length ?? 0;
    case DataType.INT64:
      return proto.int64Data?.length ?? 0;
    case DataType.UINT32:
    case DataType.UINT64:
      return proto.uint64Data?.length ?? 0;
    case DataType.INT32:
    case DataType.INT16:
    case DataType.UINT16:
    case DataType.INT8:
    case DataType.UINT8:
    case DataType.BOOL:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return proto.int32Data?.length ?? 0;
    default:
      return undefined;
  }
}

/** Destination of saved tensors: inline in the model, or appended to one external data file. */
export interface ExternalDataSink {
  /** Appends a tensor's bytes and returns its external_data entries, or undefined to keep it inline. */
  append(tensor: Tensor): TensorProto["externalData"] | undefined;
  /** Leaves tensors that already live in an external file there instead of offering them to `append`. */
  keepsExisting?: boolean;
}

/**
 * Serializes a tensor. Tensors that were read from typed fields keep that
 * form, so a round trip writes the same encoding back, and tensors read from
 * external data keep their reference unless `sink` takes them.
 */
export function tensorToProto(tensor: Tensor, sink?: ExternalDataSink): TensorProto {
  const proto: TensorProto = { name: tensor.name, dataType: tensor.dtype, dims: [...tensor.dims] };
  if (tensor.extras.docString) proto.docString = tensor.extras.docString;
  if (tensor.extras.metadataProps) proto.metadataProps = tensor.extras.metadataProps;
  const keep = tensor.source.kind === "external" && sink?.keepsExisting === true;
  const externalData = keep ? undefined : sink?.append(tensor);
  if (externalData) {
    proto.externalData = externalData;
    proto.dataLocation = 1;
    return proto;
  }
  const source = tensor.source;
  if (source.kind === "external" && (!sink || keep)) {
    // Weights already in an external file stay there: the model keeps the
    // reference and saveModel places the file next to the new model.
    proto.externalData = [
      { key: "location", value: source.ref.location },
      { key: "offset", value: String(source.ref.offset) },
      { key: "length", value: String(source.ref.length) },
    ];
    proto.dataLocation = 1;
    return proto;
  }
  if (source.kind === "fields") {
    const { floatData, int32Data, int64Data, doubleData, uint64Data } = source.proto;
    return { ...proto, floatData, int32Data, int64Data, doubleData, uint64Data };
  }
  proto.rawData = tensor.bytes();
  return proto;
}

/** Encodes a model in memory, byte for byte as the model writer writes it. */
export function encodeModelProto(proto: ModelProto): Uint8Array {
  return encodeModelProtoBytes(proto);
}

/** Encodes a single TensorProto, as used by the protobuf tests and tools. */
export function encodeTensorProto(proto: TensorProto): Uint8Array {
  return TensorProtoType.encode(proto as never).finish();
}
