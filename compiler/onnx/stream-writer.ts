import * as fs from "node:fs";
import { PeftcError } from "../errors";
import { ModelProto, TensorProto } from "./proto";
import { GraphProtoType, ModelProtoType, TensorProtoType } from "./schema";

/** Protobuf refuses messages past 2 GiB; onnxruntime and onnx both enforce it. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

// Wire tags (field number << 3 | length-delimited) of the fields written by hand below.
const MODEL_GRAPH_TAG = (7 << 3) | 2;
const GRAPH_INITIALIZER_TAG = (5 << 3) | 2;
const TENSOR_RAW_DATA_TAG = (9 << 3) | 2;

function varint(value: number): Uint8Array {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return Uint8Array.from(bytes);
}

/** One initializer split into its small encoded header and its raw bytes, which are never copied. */
interface InitializerParts {
  header: Uint8Array;
  raw: Uint8Array | undefined;
  length: number;
}

function splitInitializer(tensor: TensorProto): InitializerParts {
  const raw = tensor.rawData && tensor.rawData.byteLength > 0 ? tensor.rawData : undefined;
  const header = TensorProtoType.encode({ ...tensor, rawData: undefined } as never).finish();
  const rawField = raw ? 1 + varint(raw.byteLength).length + raw.byteLength : 0;
  return { header, raw, length: header.byteLength + rawField };
}

/**
 * Encodes a ModelProto as a list of chunks whose concatenation is the file:
 * the model fields, the graph without initializers, then each initializer
 * with its raw bytes as a chunk of their own (referenced, never copied).
 * Protobuf fields may come in any order, so this reads back as the same
 * model, and writing chunk by chunk never keeps the whole encoding in memory.
 */
export function encodeModelChunks(proto: ModelProto, where: string): Uint8Array[] {
  const graph = proto.graph ?? {};
  const initializers = (graph.initializer ?? []).map(splitInitializer);
  const rest = GraphProtoType.encode({ ...graph, initializer: [] } as never).finish();
  const initializerBytes = initializers.reduce((sum, part) => sum + 1 + varint(part.length).length + part.length, 0);
  const graphLength = rest.byteLength + initializerBytes;
  const head = ModelProtoType.encode({ ...proto, graph: undefined } as never).finish();
  const total = head.byteLength + 1 + varint(graphLength).length + graphLength;
  if (total > PROTOBUF_LIMIT) {
    throw new PeftcError(
      "E_ONNX_INVALID",
      `${where}: the model would be ${total} bytes, past protobuf's 2 GiB limit. Save it with external data (an external data threshold such as 1024 bytes).`,
    );
  }
  const chunks = [head, Uint8Array.of(MODEL_GRAPH_TAG), varint(graphLength), rest];
  for (const part of initializers) {
    chunks.push(Uint8Array.of(GRAPH_INITIALIZER_TAG), varint(part.length), part.header);
    if (part.raw) chunks.push(Uint8Array.of(TENSOR_RAW_DATA_TAG), varint(part.raw.byteLength), part.raw);
  }
  return chunks;
}

/** Writes a ModelProto to an open file, chunk by chunk. */
export function writeModelProtoStreaming(descriptor: number, proto: ModelProto, where: string): void {
  for (const bytes of encodeModelChunks(proto, where)) {
    let done = 0;
    while (done < bytes.byteLength) done += fs.writeSync(descriptor, bytes, done, bytes.byteLength - done);
  }
}

/** Encodes a ModelProto in memory, byte for byte as writeModelProtoStreaming writes it. */
export function encodeModelProtoBytes(proto: ModelProto, where = "<model>"): Uint8Array {
  return Buffer.concat(encodeModelChunks(proto, where));
}
