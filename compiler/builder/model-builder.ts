import { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import { Attribute } from "../ir/attribute";
import { Graph } from "../ir/graph";
import { Model } from "../ir/model";
import { Node } from "../ir/node";
import { Dim, tensorType } from "../ir/types";
import { validateModel } from "../ir/validate";
import { Value } from "../ir/value";
import { WeightFactory, WeightInit, WeightMode } from "./weights";

/** Default-domain opsets the builder's op helpers are written for. */
export const MIN_BUILDER_OPSET = 13;
export const MAX_BUILDER_OPSET = 21;

export interface ModelBuilderOptions {
  /** Default-domain (ai.onnx) opset version, from 13 to 21. */
  opset: number;
  /** Seed for every parameter's random stream, default 0. */
  seed?: number;
  /** `seeded` (default) draws parameter values, and `zeros` shares one zero buffer (see WeightMode). */
  weights?: WeightMode;
  /** GraphProto name, default `main_graph` as torch.onnx 2.x writes. */
  graphName?: string;
  /** ModelProto producer_name, default `peftc`. */
  producerName?: string;
}

/**
 * Builds a model the way torch.onnx lays one out: nodes named by module
 * scope (`/model/layers.0/self_attn/q_proj/MatMul`), node outputs named
 * `<node>_output_<i>`, parameters named by their PyTorch module path
 * (`model.layers.0.self_attn.q_proj.weight`) and folded weights named
 * `onnx::MatMul_<n>`. Names depend only on the order of calls, so a recipe
 * always produces the same file.
 */
export class ModelBuilder {
  readonly model: Model;
  readonly opset: number;
  readonly weights: WeightFactory;
  /** The scope of the top-level module, whose nodes are named `/Shape`, `/Constant_1`, … */
  readonly root: Scope;
  private anonymousIndex = 0;

  constructor(options: ModelBuilderOptions) {
    const { opset } = options;
    if (!Number.isInteger(opset) || opset < MIN_BUILDER_OPSET || opset > MAX_BUILDER_OPSET) {
      throw new RangeError(`invalid opset ${opset}: the builder supports default-domain opsets ${MIN_BUILDER_OPSET} to ${MAX_BUILDER_OPSET}.`);
    }
    this.opset = opset;
    this.model = new Model({
      irVersion: irVersionFor(opset),
      opsetImports: new Map([["", opset]]),
      graphName: options.graphName ?? "main_graph",
    });
    this.model.producerName = options.producerName ?? "peftc";
    this.weights = new WeightFactory(options.seed ?? 0, options.weights ?? "seeded");
    this.root = new Scope(this, []);
  }

  get graph(): Graph {
    return this.model.graph;
  }

  /** Adds a graph input with a tensor type. String dims are symbolic (`batch`, `sequence`). */
  input(name: string, elemType: DataType, shape: Dim[]): Value {
    return this.graph.addInput(name, tensorType(elemType, shape));
  }

  /** Makes `value` a graph output under `name`, renaming it as exporters do, with the given type. Omit `shape` when it is unknown. */
  output(value: Value, name: string, elemType: DataType, shape?: Dim[]): Value {
    value.name = name;
    value.type = tensorType(elemType, shape);
    this.graph.addOutput(value);
    return value;
  }

  /** Adds a float32 parameter under its exact PyTorch name, drawn from the stream keyed by that name. */
  parameter(name: string, dims: readonly number[], weightInit: WeightInit): Value {
    const count = dims.reduce((product, dim) => product * dim, 1);
    const values = this.weights.values(name, count, weightInit);
    return this.graph.addInitializer(Tensor.fromArray(name, DataType.FLOAT, dims, values), true);
  }

  /** Adds an initializer under the tensor's exact name: a folded weight, or a buffer such as BERT's position_ids. */
  initializer(tensor: Tensor): Value {
    return this.graph.addInitializer(tensor, true);
  }

  /** Returns a fresh `<prefix>_<n>` name, the form torch.onnx gives values that have no module name. */
  anonymousName(prefix: string): string {
    let name: string;
    do {
      this.anonymousIndex += 1;
      name = `${prefix}_${this.anonymousIndex}`;
    } while (this.model.names.has(name));
    return name;
  }

  /** Validates the model and returns it. Call it once, after the graph outputs are set. */
  finish(): Model {
    validateModel(this.model, "model builder");
    return this.model;
  }
}

/** Options for one node built in a scope. */
export interface NodeOptions {
  attributes?: readonly Attribute[];
  /** Number of outputs, default 1. */
  outputs?: number;
  domain?: string;
}

/**
 * A PyTorch module path inside a ModelBuilder. Nodes built here are named
 * `/<path>/<OpType>` and parameters `<path>.<leaf>`, as torch.onnx names them.
 */
export class Scope {
  constructor(
    readonly builder: ModelBuilder,
    readonly path: readonly string[],
  ) {}

  /** Returns the scope of a submodule. For example, `child("h.0", "attn")` is the module `h.0.attn` below this one. */
  child(...segments: string[]): Scope {
    for (const segment of segments) {
      if (!segment || segment.includes("/")) throw new RangeError(`invalid module name "${segment}": it must be non-empty and contain no "/".`);
    }
    return new Scope(this.builder, [...this.path, ...segments]);
  }

  /** The dotted module path, such as `transformer.h.0.attn`, or "" at the root. */
  get modulePath(): string {
    return this.path.join(".");
  }

  /** Returns the PyTorch name of a parameter or buffer of this module. */
  parameterName(leaf: string): string {
    return this.path.length ? `${this.modulePath}.${leaf}` : leaf;
  }

  /** Adds a float32 parameter of this module, named `<path>.<leaf>`. */
  parameter(leaf: string, dims: readonly number[], weightInit: WeightInit): Value {
    return this.builder.parameter(this.parameterName(leaf), dims, weightInit);
  }

  /** Builds a node named `/<path>/<opType>` (with a `_<n>` suffix when taken) and returns it. */
  node(opType: string, inputs: readonly (Value | undefined)[], options: NodeOptions = {}): Node {
    return this.builder.graph.addNode({
      opType,
      domain: options.domain,
      name: `/${this.path.map((segment) => `${segment}/`).join("")}${opType}`,
      inputs,
      outputs: options.outputs ?? 1,
      attributes: options.attributes,
    });
  }

  /** Builds a single-output node and returns its output. */
  op(opType: string, inputs: readonly (Value | undefined)[], attributes: readonly Attribute[] = []): Value {
    return this.node(opType, inputs, { attributes }).outputs[0];
  }

  get opset(): number {
    return this.builder.opset;
  }
}

/** Returns the IR version written for `opset`: 8 (as torch.onnx 1.13 to 2.x write) up to opset 18, then the minimum onnx requires. */
function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}
