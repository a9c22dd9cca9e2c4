import { PeftcError } from "../errors";
import { StringStringEntryProto, NodeDeviceConfigurationProto } from "../onnx/proto";
import { Tensor } from "../onnx/tensor";
import { Attribute, AttributeType, attributeGraphs, decodeString } from "./attribute";
import type { Graph } from "./graph";
import { Value } from "./value";

/**
 * An operator application. Inputs may be absent (an omitted optional input
 * is written as ""), outputs always exist as values, possibly unused.
 */
export class Node {
  name: string;
  opType: string;
  domain: string;
  overload: string | undefined;
  readonly attributes = new Map<string, Attribute>();
  docString: string | undefined;
  metadataProps: StringStringEntryProto[] | undefined;
  deviceConfigurations: NodeDeviceConfigurationProto[] | undefined;
  private readonly inputList: (Value | undefined)[] = [];
  private removed = false;
  private readonly outputList: Value[] = [];

  constructor(
    readonly graph: Graph,
    init: { name: string; opType: string; domain?: string },
  ) {
    this.name = init.name;
    this.opType = init.opType;
    this.domain = init.domain ?? "";
  }

  get inputs(): readonly (Value | undefined)[] {
    return this.inputList;
  }

  get outputs(): readonly Value[] {
    return this.outputList;
  }

  /** `domain::op_type`, or the op type alone in the default domain. */
  get qualifiedOpType(): string {
    return this.domain && this.domain !== "ai.onnx" ? `${this.domain}::${this.opType}` : this.opType;
  }

  /**
   * Sets input `index`; undefined marks an omitted optional input. Trailing
   * omitted inputs are kept, as the file had them.
   */
  setInput(index: number, value: Value | undefined): void {
    if (this.removed && value) {
      throw new PeftcError("E_IR_INVARIANT", `node "${this.name}" was removed from its graph; it cannot read "${value.name}".`, { node: this.name });
    }
    while (this.inputList.length <= index) this.inputList.push(undefined);
    const previous = this.inputList[index];
    if (previous !== value) {
      previous?.removeUse(this, index);
      this.inputList[index] = value;
      value?.addUse(this, index);
    }
  }

  /** Replaces all inputs at once. */
  setInputs(values: readonly (Value | undefined)[]): void {
    for (let index = this.inputList.length - 1; index >= values.length; index--) this.setInput(index, undefined);
    this.inputList.length = Math.min(this.inputList.length, values.length);
    values.forEach((value, index) => this.setInput(index, value));
  }

  /** @internal Graph.addNode and Graph.removeNode keep outputs linked through this. */
  attachOutput(value: Value): void {
    if (value.producer) {
      throw new PeftcError("E_IR_INVARIANT", `value "${value.name}" is already produced by node "${value.producer.name}"; node "${this.name}" cannot produce it too.`);
    }
    value.setProducer(this, this.outputList.length);
    this.outputList.push(value);
  }

  /** @internal */
  detachOutputs(): void {
    for (const value of this.outputList) value.setProducer(undefined, -1);
    this.outputList.length = 0;
  }

  /** True once the node has left its graph. */
  get isRemoved(): boolean {
    return this.removed;
  }

  /** @internal Called by Graph.removeNode. */
  markRemoved(): void {
    this.removed = true;
  }

  /** Drops this node's uses of its inputs; called when the node leaves the graph. */
  detachInputs(): void {
    for (let index = this.inputList.length - 1; index >= 0; index--) this.setInput(index, undefined);
    this.inputList.length = 0;
  }

  setAttribute(attribute: Attribute): void {
    this.attributes.set(attribute.name, attribute);
  }

  /** Returns the graphs held in attributes, in attribute order. */
  get subgraphs(): Graph[] {
    return [...this.attributes.values()].flatMap(attributeGraphs);
  }

  private attributeOf<T extends AttributeType>(name: string, type: T): Extract<Attribute, { type: T }> | undefined {
    const attribute = this.attributes.get(name);
    if (!attribute) return undefined;
    if (attribute.type !== type) {
      throw new PeftcError(
        "E_ONNX_INVALID",
        `node "${this.name}" (${this.qualifiedOpType}): attribute "${name}" has type ${AttributeType[attribute.type]}, expected ${AttributeType[type]}.`,
      );
    }
    return attribute as Extract<Attribute, { type: T }>;
  }

  getInt(name: string): number | undefined;
  getInt(name: string, fallback: number): number;
  getInt(name: string, fallback?: number): number | undefined {
    const attribute = this.attributeOf(name, AttributeType.INT);
    if (!attribute) return fallback;
    return clampToNumber(attribute.value);
  }

  getInts(name: string): number[] | undefined {
    return this.attributeOf(name, AttributeType.INTS)?.value.map(clampToNumber);
  }

  getFloat(name: string): number | undefined;
  getFloat(name: string, fallback: number): number;
  getFloat(name: string, fallback?: number): number | undefined {
    return this.attributeOf(name, AttributeType.FLOAT)?.value ?? fallback;
  }

  getFloats(name: string): number[] | undefined {
    return this.attributeOf(name, AttributeType.FLOATS)?.value;
  }

  getString(name: string): string | undefined;
  getString(name: string, fallback: string): string;
  getString(name: string, fallback?: string): string | undefined {
    const attribute = this.attributeOf(name, AttributeType.STRING);
    return attribute ? decodeString(attribute.value) : fallback;
  }

  getTensor(name: string): Tensor | undefined {
    return this.attributeOf(name, AttributeType.TENSOR)?.value;
  }

  getGraph(name: string): Graph | undefined {
    return this.attributeOf(name, AttributeType.GRAPH)?.value;
  }
}

/** Converts an int64 attribute to a number, saturating at ±2^53 (used for "to the end" markers). */
function clampToNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  if (value < BigInt(Number.MIN_SAFE_INTEGER)) return Number.MIN_SAFE_INTEGER;
  return Number(value);
}
