// Builders for the hand-made graphs of the match tests: a model with one
// activation input and helpers that add initializers and nodes by name.
import type { Attribute } from "../../../compiler/ir/attribute";
import { Model } from "../../../compiler/ir/model";
import type { Node } from "../../../compiler/ir/node";
import { tensorType } from "../../../compiler/ir/types";
import type { Value } from "../../../compiler/ir/value";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";

export class TinyGraph {
  readonly model = new Model({ irVersion: 8, opsetImports: new Map([["", 17], ["com.microsoft", 1]]), graphName: "tiny" });
  readonly graph = this.model.graph;

  input(name: string, shape: (number | string)[], dtype = DataType.FLOAT): Value {
    return this.graph.addInput(name, tensorType(dtype, shape));
  }

  /** Adds a float initializer of zeros. A name already in use gets a numeric suffix, as exporters number anonymous weights. */
  weight(name: string, shape: number[]): Value {
    const size = shape.reduce((product, dim) => product * dim, 1);
    return this.graph.addInitializer(Tensor.fromArray(name, DataType.FLOAT, shape, new Float32Array(size)), !this.graph.names.has(name));
  }

  /** Adds an int64 initializer. A name already in use gets a numeric suffix, as for weights. */
  ints(name: string, values: number[]): Value {
    return this.graph.addInitializer(Tensor.fromArray(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))), !this.graph.names.has(name));
  }

  node(opType: string, inputs: (Value | undefined)[], options: { name?: string; domain?: string; attributes?: Attribute[]; outputs?: number } = {}): Node {
    return this.graph.addNode({ opType, inputs, name: options.name ?? opType, domain: options.domain, attributes: options.attributes, outputs: options.outputs });
  }

  /** Adds a node and returns its first output. */
  op(opType: string, inputs: (Value | undefined)[], options: { name?: string; domain?: string; attributes?: Attribute[] } = {}): Value {
    return this.node(opType, inputs, options).outputs[0];
  }

  output(value: Value): void {
    this.graph.addOutput(value);
  }
}
