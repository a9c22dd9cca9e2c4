import { int64ToBigInt } from "../../onnx/proto";
import { Attribute, AttributeType } from "../attribute";
import type { ModelFunction } from "../model";

/**
 * Returns the default a model-local function declares for attribute
 * `name` (FunctionProto.attribute_proto, IR 9 and later), for the scalar and
 * list kinds that shape rules read. Other kinds, and attributes without a
 * default, give undefined.
 */
export function defaultAttribute(fn: ModelFunction, name: string): Attribute | undefined {
  const proto = fn.attributeProtos.find((candidate) => candidate.name === name);
  if (!proto) return undefined;
  switch (proto.type) {
    case AttributeType.INT:
      return { name, type: AttributeType.INT, value: int64ToBigInt(proto.i) };
    case AttributeType.INTS:
      return { name, type: AttributeType.INTS, value: (proto.ints ?? []).map(int64ToBigInt) };
    case AttributeType.FLOAT:
      return { name, type: AttributeType.FLOAT, value: proto.f ?? 0 };
    case AttributeType.FLOATS:
      return { name, type: AttributeType.FLOATS, value: proto.floats ?? [] };
    case AttributeType.STRING:
      return { name, type: AttributeType.STRING, value: proto.s ?? new Uint8Array() };
    case AttributeType.STRINGS:
      return { name, type: AttributeType.STRINGS, value: proto.strings ?? [] };
    default:
      return undefined;
  }
}
