import { type Attribute, attr } from "../ir/attribute";
import type { Graph } from "../ir/graph";
import { type Dim, tensorType } from "../ir/types";
import type { Value } from "../ir/value";
import { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";

/**
 * Emits the nodes of a backward pass at the end of a graph, with constants
 * shared by content and names under one prefix. Gradient rules use it so
 * they never touch the graph directly.
 */
export class GradBuilder {
  private readonly constants = new Map<string, Value>();
  private readonly shapes = new Map<Value, Value>();

  constructor(
    readonly graph: Graph,
    /** Default-domain opset of the model, which fixes operator forms (axes as inputs from 13). */
    readonly opset: number,
    /** Prefix of node and value names, such as `/grad`. */
    private readonly prefix: string,
    /** Node name stem of the node being differentiated, so backward nodes read as `/grad/<forward node>/<op>`. */
    public scope = "",
  ) {}

  /** Adds a node with one output and returns the output. */
  op(opType: string, inputs: readonly (Value | undefined)[], attributes: readonly Attribute[] = [], domain?: string): Value {
    return this.node(opType, inputs, 1, attributes, domain)[0];
  }

  /** Adds a node with `outputs` outputs and returns them. */
  node(opType: string, inputs: readonly (Value | undefined)[], outputs: number, attributes: readonly Attribute[] = [], domain?: string): Value[] {
    const name = `${this.prefix}${this.scope ? `/${this.scope.replace(/^\//, "")}` : ""}/${opType}`;
    const node = this.graph.addNode({ opType, domain, name, inputs, attributes, outputs });
    return [...node.outputs];
  }

  /** A scalar constant of `dtype`, shared by value. */
  scalar(value: number, dtype: DataType): Value {
    return this.constant(`${dtype}:${value}`, () => Tensor.fromArray(`${this.prefix}/const`, dtype, [], dtype === DataType.DOUBLE ? Float64Array.of(value) : Float32Array.of(value)));
  }

  /** A 1-D int64 constant, shared by value, for shapes, axes and indices. */
  ints(values: readonly number[]): Value {
    return this.constant(`ints:${values.join(",")}`, () => Tensor.fromArray(`${this.prefix}/ints`, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  }

  /** A 0-D int64 constant. */
  intScalar(value: number): Value {
    return this.constant(`int:${value}`, () => Tensor.fromArray(`${this.prefix}/int`, DataType.INT64, [], BigInt64Array.of(BigInt(value))));
  }

  private constant(key: string, make: () => Tensor): Value {
    let value = this.constants.get(key);
    if (!value) {
      value = this.graph.addInitializer(make());
      this.constants.set(key, value);
    }
    return value;
  }

  /** The runtime shape of `value`, one Shape node per value. */
  shape(value: Value): Value {
    let shape = this.shapes.get(value);
    if (!shape) {
      shape = this.op("Shape", [value]);
      this.shapes.set(value, shape);
    }
    return shape;
  }

  /** The element type of a value, from shape inference; float32 when unknown. */
  dtype(value: Value): DataType {
    return value.type?.kind === "tensor" ? value.type.elemType : DataType.FLOAT;
  }

  /** The static shape of a value, from shape inference. */
  dims(value: Value): Dim[] | undefined {
    return value.type?.kind === "tensor" ? value.type.shape : undefined;
  }

  rank(value: Value): number | undefined {
    return this.dims(value)?.length;
  }

  /** Gives a new value the type of the forward value it mirrors, so later rules can read its rank. */
  typed(value: Value, like: Value): Value {
    if (!value.type && like.type?.kind === "tensor") value.type = tensorType(like.type.elemType, like.type.shape ? [...like.type.shape] : undefined);
    return value;
  }

  /** Sums over `axes` (none: returns `x`), keeping the reduced axes as size 1 when `keepDims`. */
  reduceSum(x: Value, axes: readonly number[], keepDims: boolean): Value {
    if (axes.length === 0) return x;
    return this.op("ReduceSum", [x, this.ints(axes)], [attr.int("keepdims", keepDims ? 1 : 0)]);
  }

  unsqueeze(x: Value, axes: readonly number[]): Value {
    return this.op("Unsqueeze", [x, this.ints(axes)]);
  }

  squeeze(x: Value, axes: readonly number[]): Value {
    return this.op("Squeeze", [x, this.ints(axes)]);
  }

  reshapeLike(x: Value, like: Value): Value {
    return this.op("Reshape", [x, this.shape(like)]);
  }

  /** Zeros shaped and typed like `like`. */
  zerosLike(like: Value): Value {
    return this.op("Mul", [like, this.scalar(0, this.dtype(like))]);
  }
}
