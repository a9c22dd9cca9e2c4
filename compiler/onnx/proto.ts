import Long from "long";
import { PeftcError } from "../errors";

/**
 * TypeScript shapes of the ONNX messages as protobufjs decodes them with the
 * schema in schema.ts. Decoded messages carry every field (defaults come from
 * the prototype); messages built for encoding may omit any of them.
 * int64 fields decode as Long and encode from Long, number or bigint-free
 * values, so helpers below convert at the boundary.
 */
export type Int64 = Long | number;

export interface StringStringEntryProto {
  key?: string;
  value?: string;
}

export interface OperatorSetIdProto {
  domain?: string;
  version?: Int64;
}

export interface TensorShapeDimensionProto {
  dimValue?: Int64 | null;
  dimParam?: string | null;
  denotation?: string;
  value?: "dimValue" | "dimParam";
}

export interface TensorShapeProto {
  dim?: TensorShapeDimensionProto[];
}

export interface TypeProto {
  tensorType?: { elemType?: number; shape?: TensorShapeProto | null } | null;
  sequenceType?: { elemType?: TypeProto | null } | null;
  mapType?: { keyType?: number; valueType?: TypeProto | null } | null;
  optionalType?: { elemType?: TypeProto | null } | null;
  sparseTensorType?: { elemType?: number; shape?: TensorShapeProto | null } | null;
  opaqueType?: { domain?: string; name?: string } | null;
  denotation?: string;
  value?: string;
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto | null;
  docString?: string;
  metadataProps?: StringStringEntryProto[];
}

export interface TensorProto {
  dims?: Int64[];
  dataType?: number;
  segment?: { begin?: Int64; end?: Int64 } | null;
  floatData?: number[];
  int32Data?: number[];
  stringData?: Uint8Array[];
  int64Data?: Int64[];
  name?: string;
  docString?: string;
  rawData?: Uint8Array;
  externalData?: StringStringEntryProto[];
  dataLocation?: number;
  doubleData?: number[];
  uint64Data?: Int64[];
  metadataProps?: StringStringEntryProto[];
}

export interface SparseTensorProto {
  values?: TensorProto | null;
  indices?: TensorProto | null;
  dims?: Int64[];
}

export interface AttributeProto {
  name?: string;
  refAttrName?: string;
  docString?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto | null;
  g?: GraphProto | null;
  sparseTensor?: SparseTensorProto | null;
  tp?: TypeProto | null;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  sparseTensors?: SparseTensorProto[];
  typeProtos?: TypeProto[];
}

/** Sharding and pipeline placement of a node (IR 11); carried, not interpreted. */
export interface NodeDeviceConfigurationProto {
  configurationId?: string;
  shardingSpec?: unknown[];
  pipelineStage?: number;
}

export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  overload?: string;
  attribute?: AttributeProto[];
  docString?: string;
  metadataProps?: StringStringEntryProto[];
  deviceConfigurations?: NodeDeviceConfigurationProto[];
}

export interface TensorAnnotation {
  tensorName?: string;
  quantParameterTensorNames?: StringStringEntryProto[];
}

export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  sparseInitializer?: SparseTensorProto[];
  docString?: string;
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
  quantizationAnnotation?: TensorAnnotation[];
  metadataProps?: StringStringEntryProto[];
}

export interface FunctionProto {
  name?: string;
  input?: string[];
  output?: string[];
  attribute?: string[];
  attributeProto?: AttributeProto[];
  node?: NodeProto[];
  docString?: string;
  opsetImport?: OperatorSetIdProto[];
  domain?: string;
  overload?: string;
  valueInfo?: ValueInfoProto[];
  metadataProps?: StringStringEntryProto[];
}

export interface TrainingInfoProto {
  initialization?: GraphProto | null;
  algorithm?: GraphProto | null;
  initializationBinding?: StringStringEntryProto[];
  updateBinding?: StringStringEntryProto[];
}

export interface DeviceConfigurationProto {
  name?: string;
  numDevices?: number;
  device?: string[];
}

export interface ModelProto {
  irVersion?: Int64;
  opsetImport?: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: Int64;
  docString?: string;
  graph?: GraphProto | null;
  metadataProps?: StringStringEntryProto[];
  trainingInfo?: TrainingInfoProto[];
  functions?: FunctionProto[];
  configuration?: DeviceConfigurationProto[];
}

/** Converts a decoded int64 to a JavaScript number, rejecting values past 2^53. */
export function int64ToNumber(value: Int64 | null | undefined, what: string): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === "number") return value;
  const asNumber = value.toNumber();
  if (!Number.isSafeInteger(asNumber)) {
    throw new PeftcError("E_ONNX_INVALID", `${what} is ${value.toString()}, past 2^53; no real model has such a value, so the file is corrupt.`);
  }
  return asNumber;
}

/** Converts a decoded int64 to a bigint without loss. */
export function int64ToBigInt(value: Int64 | null | undefined): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value === "number") return BigInt(value);
  return BigInt(value.toString());
}

/** Converts a bigint to the Long that protobufjs encodes as int64. */
export function bigIntToInt64(value: bigint): Long {
  return Long.fromString(value.toString(), false);
}
