import { Tensor } from "../onnx/tensor";
import { SparseTensorProto, TypeProto } from "../onnx/proto";
import type { Graph } from "./graph";

/** AttributeProto.AttributeType values. */
export enum AttributeType {
  UNDEFINED = 0,
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
  TENSORS = 9,
  GRAPHS = 10,
  SPARSE_TENSOR = 11,
  SPARSE_TENSORS = 12,
  TYPE_PROTO = 13,
  TYPE_PROTOS = 14,
}

interface AttributeBase {
  name: string;
  docString?: string;
  /** Inside a function body: the function attribute this one takes its value from. */
  refAttrName?: string;
}

/**
 * A node attribute. Integers are bigints because ONNX stores int64, and
 * exporters use its extremes, such as Slice ends of 2^63 - 1. `Node.getInt`
 * converts to a number, saturating at 2^53.
 */
export type Attribute = AttributeBase &
  (
    | { type: AttributeType.FLOAT; value: number }
    | { type: AttributeType.INT; value: bigint }
    | { type: AttributeType.STRING; value: Uint8Array }
    | { type: AttributeType.TENSOR; value: Tensor }
    | { type: AttributeType.GRAPH; value: Graph }
    | { type: AttributeType.FLOATS; value: number[] }
    | { type: AttributeType.INTS; value: bigint[] }
    | { type: AttributeType.STRINGS; value: Uint8Array[] }
    | { type: AttributeType.TENSORS; value: Tensor[] }
    | { type: AttributeType.GRAPHS; value: Graph[] }
    | { type: AttributeType.SPARSE_TENSOR; value: SparseTensorProto }
    | { type: AttributeType.SPARSE_TENSORS; value: SparseTensorProto[] }
    | { type: AttributeType.TYPE_PROTO; value: TypeProto }
    | { type: AttributeType.TYPE_PROTOS; value: TypeProto[] }
    | { type: AttributeType.UNDEFINED; value: undefined }
  );

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function encodeString(text: string): Uint8Array {
  return textEncoder.encode(text);
}

export function decodeString(bytes: Uint8Array): string {
  return textDecoder.decode(bytes);
}

/** Attribute constructors for code that builds nodes. */
export const attr = {
  int: (name: string, value: number | bigint): Attribute => ({ name, type: AttributeType.INT, value: BigInt(value) }),
  ints: (name: string, values: readonly (number | bigint)[]): Attribute => ({ name, type: AttributeType.INTS, value: values.map((value) => BigInt(value)) }),
  float: (name: string, value: number): Attribute => ({ name, type: AttributeType.FLOAT, value }),
  floats: (name: string, values: readonly number[]): Attribute => ({ name, type: AttributeType.FLOATS, value: [...values] }),
  string: (name: string, value: string): Attribute => ({ name, type: AttributeType.STRING, value: encodeString(value) }),
  strings: (name: string, values: readonly string[]): Attribute => ({ name, type: AttributeType.STRINGS, value: values.map(encodeString) }),
  tensor: (name: string, value: Tensor): Attribute => ({ name, type: AttributeType.TENSOR, value }),
  graph: (name: string, value: Graph): Attribute => ({ name, type: AttributeType.GRAPH, value }),
};

/** Returns the subgraphs an attribute contains (If branches, Loop bodies, generation decoders). */
export function attributeGraphs(attribute: Attribute): Graph[] {
  if (attribute.type === AttributeType.GRAPH) return [attribute.value];
  if (attribute.type === AttributeType.GRAPHS) return attribute.value;
  return [];
}
