/**
 * ONNX tensor element types (TensorProto.DataType), with the byte size and
 * JavaScript array each one decodes to.
 */
export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
  FLOAT8E4M3FN = 17,
  FLOAT8E4M3FNUZ = 18,
  FLOAT8E5M2 = 19,
  FLOAT8E5M2FNUZ = 20,
  UINT4 = 21,
  INT4 = 22,
  FLOAT4E2M1 = 23,
  FLOAT8E8M0 = 24,
}

/** Element bytes in raw_data; 0.5 for the packed 4-bit types, 0 for strings. */
const BYTE_SIZES: Partial<Record<DataType, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.STRING]: 0,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
  [DataType.COMPLEX64]: 8,
  [DataType.COMPLEX128]: 16,
  [DataType.BFLOAT16]: 2,
  [DataType.FLOAT8E4M3FN]: 1,
  [DataType.FLOAT8E4M3FNUZ]: 1,
  [DataType.FLOAT8E5M2]: 1,
  [DataType.FLOAT8E5M2FNUZ]: 1,
  [DataType.UINT4]: 0.5,
  [DataType.INT4]: 0.5,
  [DataType.FLOAT4E2M1]: 0.5,
  [DataType.FLOAT8E8M0]: 1,
};

export function dataTypeName(dtype: number): string {
  return DataType[dtype] ?? `DataType(${dtype})`;
}

/** Returns the byte size of one element; throws for an unknown type. */
export function byteSize(dtype: number): number {
  const size = BYTE_SIZES[dtype as DataType];
  if (size === undefined) throw new Error(`unknown ONNX data type ${dtype}`);
  return size;
}

/** Returns the bytes `count` elements take in raw_data (4-bit types round up). */
export function byteLengthOf(dtype: number, count: number): number {
  return Math.ceil(byteSize(dtype) * count);
}

export function isFloatType(dtype: number): boolean {
  return (
    dtype === DataType.FLOAT ||
    dtype === DataType.FLOAT16 ||
    dtype === DataType.DOUBLE ||
    dtype === DataType.BFLOAT16 ||
    (dtype >= DataType.FLOAT8E4M3FN && dtype <= DataType.FLOAT8E5M2FNUZ) ||
    dtype === DataType.FLOAT4E2M1 ||
    dtype === DataType.FLOAT8E8M0
  );
}

export function isIntegerType(dtype: number): boolean {
  return (
    dtype === DataType.UINT8 ||
    dtype === DataType.INT8 ||
    dtype === DataType.UINT16 ||
    dtype === DataType.INT16 ||
    dtype === DataType.INT32 ||
    dtype === DataType.INT64 ||
    dtype === DataType.UINT32 ||
    dtype === DataType.UINT64 ||
    dtype === DataType.UINT4 ||
    dtype === DataType.INT4
  );
}

/**
 * Decoded element arrays. float16 and bfloat16 decode to Float32Array,
 * bool to Uint8Array (0 or 1), int64 and uint64 to bigint arrays.
 */
export type TensorArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Element type names as PyTorch, NumPy and onnxruntime's JavaScript API write them. */
const ELEMENT_TYPE_NAMES: Partial<Record<DataType, string>> = {
  [DataType.FLOAT]: "float32",
  [DataType.FLOAT16]: "float16",
  [DataType.BFLOAT16]: "bfloat16",
  [DataType.DOUBLE]: "float64",
  [DataType.INT64]: "int64",
  [DataType.INT32]: "int32",
  [DataType.INT16]: "int16",
  [DataType.INT8]: "int8",
  [DataType.UINT8]: "uint8",
  [DataType.BOOL]: "bool",
};

/** Returns the element type name users of PyTorch and onnxruntime know ("float32"), or the ONNX name for the rest. */
export function elementTypeName(dtype: number): string {
  return ELEMENT_TYPE_NAMES[dtype as DataType] ?? dataTypeName(dtype);
}
