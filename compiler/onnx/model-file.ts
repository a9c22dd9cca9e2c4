import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import { DataType, byteLengthOf, dataTypeName } from "./dtype";
import { ExternalDataContext, parseExternalData } from "./external-data";
import { ModelProto, TensorProto, int64ToNumber } from "./proto";
import { ModelProtoType, TensorProtoType } from "./schema";
import { encodeModelProtoBytes, writeModelProtoStreaming } from "./stream-writer";
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

/** Reads and decodes a model file; tensors stay undecoded until asked for. */
export function readModelProto(filePath: string): ModelProto {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(filePath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new PeftcError("E_FILE_NOT_FOUND", `${filePath}: file not found.`, { file: filePath });
    if (code === "EISDIR") throw new PeftcError("E_FILE_NOT_FOUND", `${filePath}: is a folder; pass the .onnx file inside it.`, { file: filePath });
    throw error;
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
  const extras = { docString: proto.docString || undefined, metadataProps: proto.metadataProps?.length ? proto.metadataProps : undefined };
  if (proto.dataLocation === 1) {
    if (!context) throw new PeftcError("E_EXTERNAL_DATA_PATH", `${where}: uses external data but the model was loaded from a buffer; load it from its file.`);
    const count = dims.reduce((product, dim) => product * dim, 1);
    const ref = parseExternalData(proto, byteLengthOf(dtype, count), context);
    return new Tensor(name, dtype, dims, { kind: "external", ref }, extras);
  }
  if (proto.rawData && proto.rawData.byteLength > 0) return new Tensor(name, dtype, dims, { kind: "raw", bytes: proto.rawData }, extras);
  if (dtype === DataType.STRING || proto.segment) {
    throw new PeftcError("E_TENSOR_DATA", `${where}: ${dataTypeName(dtype)} tensors and segmented tensors are not supported in a transformer graph.`);
  }
  return new Tensor(name, dtype, dims, { kind: "fields", proto }, extras);
}

/** Destination of saved tensors: inline in the model, or appended to one external data file. */
export interface ExternalDataSink {
  /** Appends a tensor's bytes and returns its external_data entries, or undefined to keep it inline. */
  append(tensor: Tensor): TensorProto["externalData"] | undefined;
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
  const externalData = sink?.append(tensor);
  if (externalData) {
    proto.externalData = externalData;
    proto.dataLocation = 1;
    return proto;
  }
  const source = tensor.source;
  if (source.kind === "external" && !sink) {
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

/** Streams tensors into one external data file, each at an offset aligned to 64 bytes for mmap-friendly reads. */
export class ExternalDataFile implements ExternalDataSink {
  private descriptor: number | undefined;
  private offset = 0;
  tensorCount = 0;

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
    this.tensorCount += 1;
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

export interface WriteOptions {
  /**
   * Initializers of at least this many bytes go to an external data file
   * named `<model file name>.data` next to the model. Without it, new
   * tensors stay inline, and protobuf caps a single file at 2 GiB.
   */
  externalDataThreshold?: number;
  /** Name of the external data file, relative to the model's folder. */
  externalDataLocation?: string;
  /**
   * Without a threshold, what happens to weights that already live in
   * external data: "keep" references their file (the caller places it next
   * to the model), "inline" copies them into the model file. Default "keep".
   */
  existingExternalData?: "keep" | "inline";
}

/** Encodes a model in memory, byte for byte as writeModelFile writes it. */
export function encodeModelProto(proto: ModelProto): Uint8Array {
  return encodeModelProtoBytes(proto);
}

/** Encodes a single TensorProto, as used by the protobuf tests and tools. */
export function encodeTensorProto(proto: TensorProto): Uint8Array {
  return TensorProtoType.encode(proto as never).finish();
}

/**
 * Writes `build(sink)` to `filePath` atomically: the model and its data file
 * are written under temporary names and renamed only once both are complete,
 * so a failure never leaves a half-written model behind.
 */
export function writeModelFile(filePath: string, build: (sink: ExternalDataSink | undefined) => ModelProto, options: WriteOptions = {}): void {
  const folder = path.dirname(path.resolve(filePath));
  fs.mkdirSync(folder, { recursive: true });
  const suffix = `.tmp-${process.pid}-${Date.now()}`;
  const modelTemp = filePath + suffix;
  const location = options.externalDataLocation ?? `${path.basename(filePath)}.data`;
  const dataPath = path.join(folder, location);
  const dataTemp = dataPath + suffix;
  const threshold = options.externalDataThreshold;
  let dataFile: ExternalDataFile | undefined;
  try {
    let sink: ExternalDataSink | undefined;
    if (threshold === undefined && options.existingExternalData === "inline") {
      sink = { append: () => undefined };
    }
    if (threshold !== undefined) {
      dataFile = new ExternalDataFile(dataTemp, location);
      const file = dataFile;
      sink = { append: (tensor) => (tensor.byteLength >= threshold ? file.append(tensor) : undefined) };
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
      if (dataFile.tensorCount > 0) fs.renameSync(dataTemp, dataPath);
      else fs.rmSync(dataTemp, { force: true });
    }
    fs.renameSync(modelTemp, filePath);
  } catch (error) {
    dataFile?.close();
    for (const temp of [modelTemp, dataTemp]) fs.rmSync(temp, { force: true });
    throw error;
  }
}
