import { DataType, dataTypeName } from "../onnx/dtype";
import { TypeProto } from "../onnx/proto";

/**
 * One dimension of a shape: a known size, a symbolic name kept from the
 * graph (`batch`, `sequence`, `past_sequence`), or null when unknown.
 */
export type Dim = number | string | null;

/** A tensor's element type and shape; `shape` undefined means even the rank is unknown. */
export interface TensorType {
  kind: "tensor";
  elemType: DataType;
  shape?: Dim[];
}

/** Sequence, map, optional, sparse and opaque types, carried as their TypeProto. */
export interface OtherType {
  kind: "other";
  proto: TypeProto;
}

export type ValueType = TensorType | OtherType;

export function tensorType(elemType: DataType, shape?: Dim[]): TensorType {
  return { kind: "tensor", elemType, shape };
}

export function formatDim(dim: Dim): string {
  return dim === null ? "?" : String(dim);
}

export function formatShape(shape: Dim[] | undefined): string {
  return shape ? `[${shape.map(formatDim).join(",")}]` : "[?]";
}

export function formatType(type: ValueType | undefined): string {
  if (!type) return "?";
  if (type.kind === "other") return type.proto.value ?? "other";
  return `${dataTypeName(type.elemType)}${formatShape(type.shape)}`;
}

export function sameDim(a: Dim, b: Dim): boolean {
  return a === b;
}

export function sameShape(a: Dim[] | undefined, b: Dim[] | undefined): boolean {
  if (!a || !b) return a === b;
  return a.length === b.length && a.every((dim, i) => sameDim(dim, b[i]));
}
