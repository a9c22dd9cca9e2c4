import { PeftcError } from "../errors";
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

  /** Returns a scalar constant of `dtype`, shared by value. */
  scalar(value: number, dtype: DataType): Value {
    return this.constant(`${dtype}:${value}`, () => Tensor.fromArray(`${this.prefix}/const`, dtype, [], dtype === DataType.DOUBLE ? Float64Array.of(value) : Float32Array.of(value)));
  }

  /**
   * Returns a 1-D int64 constant, shared by value, for shapes, axes and indices.
   * Values past ±2^62 are clamped there: they can only be "to the end"
   * sentinels such as a Slice end of 2^63 - 1, which a double rounds up to
   * 2^63 and int64 cannot hold.
   */
  ints(values: readonly number[]): Value {
    const clamped = values.map((value) => Math.max(-(2 ** 62), Math.min(2 ** 62, value)));
    return this.constant(`ints:${clamped.join(",")}`, () => Tensor.fromArray(`${this.prefix}/ints`, DataType.INT64, [clamped.length], BigInt64Array.from(clamped.map(BigInt))));
  }

  /** Returns a 0-D int64 constant. */
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

  /** Returns the runtime shape of `value`, with one Shape node per value. */
  shape(value: Value): Value {
    let shape = this.shapes.get(value);
    if (!shape) {
      shape = this.op("Shape", [value]);
      this.shapes.set(value, shape);
    }
    return shape;
  }

  /**
   * Returns the element type of a value, from shape inference or `typed`.
   * Values a rule just made are untyped, so rules read types from forward
   * values. Asking for an untyped value's type is a bug and throws.
   */
  dtype(value: Value): DataType {
    if (value.type?.kind === "tensor") return value.type.elemType;
    if (value.initializer) return value.initializer.dtype;
    throw new PeftcError("E_IR_INVARIANT", `backward pass: the element type of "${value.name}" is unknown. A gradient rule must read types from forward values; please report this.`, { value: value.name });
  }

  /** Returns the static shape of a value, from shape inference. */
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

  /**
   * Zeros shaped and typed like `like`, from its runtime shape, so they are
   * zero even where `like` is infinite and do not keep `like` alive.
   */
  zerosLike(like: Value): Value {
    const dtype = this.dtype(like);
    // Every float type encodes 0 as all-zero bytes, so a zeroed array of the decoded type fits each of them.
    const zero = Tensor.fromArray("zero", dtype, [1], dtype === DataType.DOUBLE ? new Float64Array(1) : new Float32Array(1));
    return this.op("ConstantOfShape", [this.shape(like)], [attr.tensor("value", zero)]);
  }
}
