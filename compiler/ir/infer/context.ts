import { PeftcError } from "../../errors";
import { DataType, dataTypeName } from "../../onnx/dtype";
import { SparseTensorProto } from "../../onnx/proto";
import { Tensor } from "../../onnx/tensor";
import { Attribute, AttributeType, decodeString } from "../attribute";
import type { Graph } from "../graph";
import type { Node } from "../node";
import { Dim, TensorType, ValueType, formatType } from "../types";
import type { Value } from "../value";
import { KnownData } from "./known-data";

/** A type and known values handed to a subgraph input or returned from a subgraph output. */
export interface TypedData {
  type: ValueType | undefined;
  data?: KnownData;
}

/** Services the inference engine gives a rule beyond the node itself. */
export interface InferenceHost {
  typeOf(value: Value): ValueType | undefined;
  dataOf(value: Value): KnownData | undefined;
  /** Reads an attribute, resolving references to the calling node's attributes inside function bodies. */
  attribute(node: Node, name: string): Attribute | undefined;
  /**
   * Infers a subgraph with the given types bound to its inputs (undefined
   * keeps an input's declared type) and returns its output types.
   */
  inferSubgraph(graph: Graph, inputs: readonly (TypedData | undefined)[]): TypedData[];
}

/**
 * Raised when a rule needs the type of an input that inference has not
 * found (its producer is unsupported or failed). The engine records the
 * outputs as untyped for that reason, which is not an error of this node.
 */
export class MissingInputType extends Error {
  constructor(
    readonly inputIndex: number,
    readonly valueName: string,
  ) {
    super(`input ${inputIndex} ("${valueName}") has no known type`);
    this.name = "MissingInputType";
  }
}

/** The type and known values a rule set for one output. */
export interface OutputResult {
  type: ValueType;
  data?: KnownData;
}

/**
 * The view of one node that a shape rule works with: input types and known
 * values, attributes, and the output types it sets. Rules throw through
 * `fail` when the node is invalid for the shapes it receives.
 */
export class InferenceContext {
  readonly outputs = new Map<number, OutputResult>();

  constructor(
    readonly node: Node,
    /** Opset version of the node's domain in the graph or function that contains it. */
    readonly opset: number,
    private readonly host: InferenceHost,
  ) {}

  get inputCount(): number {
    return this.node.inputs.length;
  }

  get outputCount(): number {
    return this.node.outputs.length;
  }

  /** True when input `index` is given (not omitted or past the end). */
  hasInput(index: number): boolean {
    return this.node.inputs[index] !== undefined;
  }

  /** True when output `index` exists and is not an omitted optional output. */
  hasOutput(index: number): boolean {
    const output = this.node.outputs[index];
    return output !== undefined && !output.isOmitted;
  }

  /** Returns the tensor type of a required input; fails when it is missing, throws MissingInputType when untyped. */
  input(index: number): TensorType {
    const value = this.node.inputs[index];
    if (!value) this.fail(`required input ${index} is missing`, "Give the input in the model.");
    const type = this.host.typeOf(value);
    if (!type) throw new MissingInputType(index, value.name);
    if (type.kind !== "tensor") this.fail(`input ${index} ("${value.name}") has type ${formatType(type)}, expected a tensor`);
    return type;
  }

  /** Returns the tensor type of an optional input, or undefined when it is omitted. */
  optionalInput(index: number): TensorType | undefined {
    return this.hasInput(index) ? this.input(index) : undefined;
  }

  /** Returns the full type (tensor, sequence, optional) of an input; for ops like Identity that accept any. */
  inputValueType(index: number): ValueType {
    const value = this.node.inputs[index];
    if (!value) this.fail(`required input ${index} is missing`, "Give the input in the model.");
    const type = this.host.typeOf(value);
    if (!type) throw new MissingInputType(index, value.name);
    return type;
  }

  /** Shape of a required input; undefined when even its rank is unknown. */
  shape(index: number): Dim[] | undefined {
    return this.input(index).shape;
  }

  elemType(index: number): DataType {
    return this.input(index).elemType;
  }

  /** Known values of an input, when inference tracks them. */
  data(index: number): KnownData | undefined {
    const value = this.node.inputs[index];
    return value ? this.host.dataOf(value) : undefined;
  }

  inputName(index: number): string {
    return this.node.inputs[index]?.name ?? "";
  }

  /** Sets output `index`; ignored when the output is omitted. */
  setOutput(index: number, elemType: DataType, shape: Dim[] | undefined, data?: KnownData): void {
    this.setOutputType(index, { kind: "tensor", elemType, shape: shape ? [...shape] : undefined }, data);
  }

  setOutputType(index: number, type: ValueType, data?: KnownData): void {
    if (!this.hasOutput(index)) return;
    this.outputs.set(index, { type, data });
  }

  /** Adds known values to an output whose type is already set. */
  setOutputData(index: number, data: KnownData | undefined): void {
    const result = this.outputs.get(index);
    if (result && data) result.data = data;
  }

  inferSubgraph(graph: Graph, inputs: readonly (TypedData | undefined)[]): TypedData[] {
    return this.host.inferSubgraph(graph, inputs);
  }

  // -------------------------------------------------------------------------
  // Attributes

  hasAttribute(name: string): boolean {
    return this.host.attribute(this.node, name) !== undefined;
  }

  private attributeOf<T extends AttributeType>(name: string, type: T): Extract<Attribute, { type: T }> | undefined {
    const attribute = this.host.attribute(this.node, name);
    if (!attribute) return undefined;
    if (attribute.type !== type) {
      this.fail(`attribute "${name}" has type ${AttributeType[attribute.type]}, expected ${AttributeType[type]}`, "Fix the attribute in the model.");
    }
    return attribute as Extract<Attribute, { type: T }>;
  }

  int(name: string): number | undefined;
  int(name: string, fallback: number): number;
  int(name: string, fallback?: number): number | undefined {
    const attribute = this.attributeOf(name, AttributeType.INT);
    return attribute ? clampToNumber(attribute.value) : fallback;
  }

  ints(name: string): number[] | undefined {
    return this.attributeOf(name, AttributeType.INTS)?.value.map(clampToNumber);
  }

  float(name: string, fallback: number): number {
    return this.attributeOf(name, AttributeType.FLOAT)?.value ?? fallback;
  }

  floats(name: string): number[] | undefined {
    return this.attributeOf(name, AttributeType.FLOATS)?.value;
  }

  string(name: string, fallback: string): string {
    const attribute = this.attributeOf(name, AttributeType.STRING);
    return attribute ? decodeString(attribute.value) : fallback;
  }

  strings(name: string): string[] | undefined {
    return this.attributeOf(name, AttributeType.STRINGS)?.value.map(decodeString);
  }

  tensor(name: string): Tensor | undefined {
    return this.attributeOf(name, AttributeType.TENSOR)?.value;
  }

  graph(name: string): Graph | undefined {
    return this.attributeOf(name, AttributeType.GRAPH)?.value;
  }

  sparseTensor(name: string): SparseTensorProto | undefined {
    return this.attributeOf(name, AttributeType.SPARSE_TENSOR)?.value;
  }

  /** Returns a required integer attribute, failing with a clear message when it is absent. */
  requireInt(name: string): number {
    const value = this.int(name);
    if (value === undefined) this.fail(`required attribute "${name}" is missing`, "Add the attribute to the node.");
    return value;
  }

  // -------------------------------------------------------------------------
  // Errors and helpers

  /**
   * Throws an E_SHAPE_INFERENCE error naming this node, its op, its first
   * output and `detail`. `action` is the next step for the user, by
   * default a check of the model.
   */
  fail(detail: string, action = "Check the input shapes of the model or re-export it."): never {
    const node = this.node;
    const output = node.outputs.find((value) => !value.isOmitted)?.name;
    const computing = output ? ` computing "${output}"` : "";
    throw new PeftcError("E_SHAPE_INFERENCE", `node "${node.name || "(unnamed)"}" (${node.qualifiedOpType})${computing}: ${detail}. ${action}`, {
      node: node.name,
      op: node.opType,
      domain: node.domain,
      value: output,
    });
  }

  /** Maps a possibly negative axis into [0, rank); fails when out of range. */
  axis(axis: number, rank: number, what = "axis"): number {
    const normalized = axis < 0 ? axis + rank : axis;
    if (normalized < 0 || normalized >= rank) this.fail(`${what} ${axis} is out of range for rank ${rank}`);
    return normalized;
  }

  /** Fails unless `type` is one of `allowed`; used where the output type depends on it. */
  expectType(index: number, allowed: readonly DataType[]): void {
    const type = this.elemType(index);
    if (!allowed.includes(type)) {
      this.fail(`input ${index} ("${this.inputName(index)}") has element type ${dataTypeName(type)}, expected ${allowed.map(dataTypeName).join(" or ")}`);
    }
  }
}

/** Converts an int64 attribute to a number, saturating at ±2^53 (exporters use the extremes as "to the end"). */
function clampToNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  if (value < BigInt(Number.MIN_SAFE_INTEGER)) return Number.MIN_SAFE_INTEGER;
  return Number(value);
}
