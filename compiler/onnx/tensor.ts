import { PeftcError } from "../errors";
import { DataType, TensorArray, byteLengthOf, dataTypeName } from "./dtype";
import { ExternalDataRef, readExternalData } from "./external-data";
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from "./half";
import { StringStringEntryProto, TensorProto, int64ToBigInt } from "./proto";

/**
 * Origin of a tensor's values. Values are decoded only when asked for,
 * and external data is read from disk on each request and never cached, so a
 * model larger than memory can be loaded, inspected and rewritten.
 */
export type TensorSource =
  | { kind: "raw"; bytes: Uint8Array }
  | { kind: "fields"; proto: TensorProto }
  | { kind: "external"; ref: ExternalDataRef }
  | { kind: "array"; array: TensorArray };

export interface TensorExtras {
  docString?: string;
  metadataProps?: StringStringEntryProto[];
}

// NOTE: raw_data is little-endian by the ONNX spec; typed-array views below
// assume a little-endian host, which covers x86-64 and arm64.
export class Tensor {
  private origin: TensorSource;

  constructor(
    public name: string,
    readonly dtype: DataType,
    readonly dims: readonly number[],
    source: TensorSource,
    readonly extras: TensorExtras = {},
  ) {
    this.origin = source;
  }

  get source(): TensorSource {
    return this.origin;
  }

  /**
   * @internal Points the tensor at a new copy of the same values. The model
   * writer calls this when a save replaces the external data file the
   * tensor was read from, so the tensor never reads stale offsets.
   */
  rebind(source: TensorSource): void {
    this.origin = source;
  }

  /** Creates an in-memory tensor; float16/bfloat16 take float32 values. */
  static fromArray(name: string, dtype: DataType, dims: readonly number[], array: TensorArray): Tensor {
    const tensor = new Tensor(name, dtype, dims, { kind: "array", array });
    if (array.length !== tensor.size) {
      throw new PeftcError("E_TENSOR_DATA", `tensor "${name}": ${array.length} values given for shape [${dims.join(", ")}] (${tensor.size} elements).`);
    }
    return tensor;
  }

  get size(): number {
    return this.dims.reduce((product, dim) => product * dim, 1);
  }

  get byteLength(): number {
    return byteLengthOf(this.dtype, this.size);
  }

  get isExternal(): boolean {
    return this.source.kind === "external";
  }

  /** Decodes the values: float16/bfloat16 become Float32Array, bool Uint8Array, 64-bit ints bigint arrays. */
  data(): TensorArray {
    const source = this.source;
    switch (source.kind) {
      case "array":
        return source.array;
      case "raw":
        return decodeRaw(this, source.bytes);
      case "external":
        return decodeRaw(this, readExternalData(source.ref, this.name));
      case "fields":
        return decodeFields(this, source.proto);
    }
  }

  /** Returns the values as little-endian bytes, the raw_data encoding. */
  bytes(): Uint8Array {
    const source = this.source;
    if (source.kind === "raw") return source.bytes;
    if (source.kind === "external") return readExternalData(source.ref, this.name);
    return encodeRaw(this.dtype, this.data());
  }

  /** Returns the values as plain numbers (bigints converted; throws past 2^53). */
  numbers(): number[] {
    const values = this.data();
    if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
      return Array.from(values, (value) => {
        const asNumber = Number(value);
        if (!Number.isSafeInteger(asNumber)) return value < 0n ? -Number.MAX_SAFE_INTEGER : Number.MAX_SAFE_INTEGER;
        return asNumber;
      });
    }
    return Array.from(values as ArrayLike<number>);
  }
}

function checkLength(tensor: Tensor, actual: number, expected: number, where: string): void {
  if (actual !== expected) {
    throw new PeftcError(
      "E_TENSOR_DATA",
      `tensor "${tensor.name}": ${where} has ${actual} ${where === "raw_data" ? "bytes" : "values"} but ${dataTypeName(tensor.dtype)}[${tensor.dims.join(", ")}] needs ${expected}. The file is corrupt or was written by a broken exporter.`,
    );
  }
}

/**
 * Views `bytes` as elements of `elementSize` bytes, copying them first when
 * they start at an unaligned offset (typed arrays require alignment).
 * Buffer.slice would return a view, not a copy, so the copy is explicit.
 */
function view<T>(bytes: Uint8Array, elementSize: number, make: (buffer: ArrayBufferLike, offset: number, length: number) => T): T {
  const length = bytes.byteLength / elementSize;
  if (bytes.byteOffset % elementSize === 0) return make(bytes.buffer, bytes.byteOffset, length);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return make(copy.buffer, 0, length);
}

function decodeRaw(tensor: Tensor, bytes: Uint8Array): TensorArray {
  checkLength(tensor, bytes.byteLength, tensor.byteLength, "raw_data");
  switch (tensor.dtype) {
    case DataType.FLOAT:
      return view(bytes, 4, (b, o, n) => new Float32Array(b, o, n));
    case DataType.DOUBLE:
      return view(bytes, 8, (b, o, n) => new Float64Array(b, o, n));
    case DataType.INT32:
      return view(bytes, 4, (b, o, n) => new Int32Array(b, o, n));
    case DataType.UINT32:
      return view(bytes, 4, (b, o, n) => new Uint32Array(b, o, n));
    case DataType.INT64:
      return view(bytes, 8, (b, o, n) => new BigInt64Array(b, o, n));
    case DataType.UINT64:
      return view(bytes, 8, (b, o, n) => new BigUint64Array(b, o, n));
    case DataType.INT16:
      return view(bytes, 2, (b, o, n) => new Int16Array(b, o, n));
    case DataType.UINT16:
      return view(bytes, 2, (b, o, n) => new Uint16Array(b, o, n));
    case DataType.INT8:
      return new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    case DataType.UINT8:
    case DataType.BOOL:
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    case DataType.FLOAT16: {
      const bits = view(bytes, 2, (b, o, n) => new Uint16Array(b, o, n));
      return Float32Array.from(bits, float16ToFloat32);
    }
    case DataType.BFLOAT16: {
      const bits = view(bytes, 2, (b, o, n) => new Uint16Array(b, o, n));
      return Float32Array.from(bits, bfloat16ToFloat32);
    }
    default:
      throw new PeftcError("E_TENSOR_DATA", `tensor "${tensor.name}": decoding ${dataTypeName(tensor.dtype)} values is not supported; only its raw bytes can be read.`);
  }
}

function decodeFields(tensor: Tensor, proto: TensorProto): TensorArray {
  const count = tensor.size;
  const int32Field = (): number[] => {
    const values = proto.int32Data ?? [];
    checkLength(tensor, values.length, count, "int32_data");
    return values;
  };
  switch (tensor.dtype) {
    case DataType.FLOAT: {
      const values = proto.floatData ?? [];
      checkLength(tensor, values.length, count, "float_data");
      return Float32Array.from(values);
    }
    case DataType.DOUBLE: {
      const values = proto.doubleData ?? [];
      checkLength(tensor, values.length, count, "double_data");
      return Float64Array.from(values);
    }
    case DataType.INT64: {
      const values = proto.int64Data ?? [];
      checkLength(tensor, values.length, count, "int64_data");
      return BigInt64Array.from(values, int64ToBigInt);
    }
    case DataType.UINT32:
    case DataType.UINT64: {
      const values = proto.uint64Data ?? [];
      checkLength(tensor, values.length, count, "uint64_data");
      if (tensor.dtype === DataType.UINT32) return Uint32Array.from(values, (value) => Number(int64ToBigInt(value) & 0xffffffffn));
      return BigUint64Array.from(values, (value) => BigInt.asUintN(64, int64ToBigInt(value)));
    }
    case DataType.INT32:
      return Int32Array.from(int32Field());
    case DataType.INT16:
      return Int16Array.from(int32Field());
    case DataType.UINT16:
      return Uint16Array.from(int32Field());
    case DataType.INT8:
      return Int8Array.from(int32Field());
    case DataType.UINT8:
      return Uint8Array.from(int32Field());
    case DataType.BOOL:
      return Uint8Array.from(int32Field(), (value) => (value ? 1 : 0));
    case DataType.FLOAT16:
      return Float32Array.from(int32Field(), (bits) => float16ToFloat32(bits & 0xffff));
    case DataType.BFLOAT16:
      return Float32Array.from(int32Field(), (bits) => bfloat16ToFloat32(bits & 0xffff));
    default:
      throw new PeftcError("E_TENSOR_DATA", `tensor "${tensor.name}": decoding ${dataTypeName(tensor.dtype)} values is not supported.`);
  }
}

/** Encodes decoded values as raw_data bytes. */
export function encodeRaw(dtype: DataType, values: TensorArray): Uint8Array {
  if (dtype === DataType.FLOAT16 || dtype === DataType.BFLOAT16) {
    const convert = dtype === DataType.FLOAT16 ? float32ToFloat16 : float32ToBfloat16;
    const bits = Uint16Array.from(values as ArrayLike<number>, convert);
    return new Uint8Array(bits.buffer);
  }
  if (dtype === DataType.BOOL) return Uint8Array.from(values as Uint8Array, (value) => (value ? 1 : 0));
  const expected = arrayTypeFor(dtype);
  const typed = values instanceof expected ? values : convertArray(dtype, values);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

type ArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** Returns the typed array class that contains decoded values of `dtype`. */
export function arrayTypeFor(dtype: DataType): ArrayConstructor {
  switch (dtype) {
    case DataType.FLOAT:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return Float32Array;
    case DataType.DOUBLE:
      return Float64Array;
    case DataType.INT8:
      return Int8Array;
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array;
    case DataType.INT16:
      return Int16Array;
    case DataType.UINT16:
      return Uint16Array;
    case DataType.INT32:
      return Int32Array;
    case DataType.UINT32:
      return Uint32Array;
    case DataType.INT64:
      return BigInt64Array;
    case DataType.UINT64:
      return BigUint64Array;
    default:
      throw new PeftcError("E_TENSOR_DATA", `${dataTypeName(dtype)} tensors cannot be decoded to typed arrays; only their raw bytes can be read.`);
  }
}

function convertArray(dtype: DataType, values: TensorArray): TensorArray {
  const target = arrayTypeFor(dtype);
  if (target === BigInt64Array || target === BigUint64Array) {
    return (target as BigInt64ArrayConstructor).from(values as ArrayLike<number>, (value) => BigInt(value));
  }
  return (target as Float32ArrayConstructor).from(values as ArrayLike<number>, (value) => Number(value));
}
