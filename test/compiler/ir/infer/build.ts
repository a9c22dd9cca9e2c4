import { InferenceReport, inferShapes } from "../../../../compiler/ir/infer";
import { Attribute } from "../../../../compiler/ir/attribute";
import { Graph } from "../../../../compiler/ir/graph";
import { Model } from "../../../../compiler/ir/model";
import { Node } from "../../../../compiler/ir/node";
import { Dim, formatType, tensorType } from "../../../../compiler/ir/types";
import { Value } from "../../../../compiler/ir/value";
import { DataType, TensorArray } from "../../../../compiler/onnx/dtype";
import { Tensor, arrayTypeFor } from "../../../../compiler/onnx/tensor";

/** Small graph builders for the shape inference tests. */

export { attr } from "../../../../compiler/ir/attribute";
export { DataType };

/** Creates an empty model importing the given opsets (default opset 18 of the default domain). */
export function newModel(opsets: Record<string, number> = { "": 18 }): Model {
  return new Model({ irVersion: 8, opsetImports: new Map(Object.entries(opsets)), graphName: "test" });
}

export function input(graph: Graph, name: string, elemType: DataType, shape?: Dim[]): Value {
  return graph.addInput(name, tensorType(elemType, shape));
}

/** Adds a constant initializer with the given values. */
export function constant(graph: Graph, name: string, elemType: DataType, dims: number[], values: readonly number[]): Value {
  const Array = arrayTypeFor(elemType);
  const array = (Array === BigInt64Array || Array === BigUint64Array ? BigInt64Array.from(values, BigInt) : (Array as Float32ArrayConstructor).from(values)) as TensorArray;
  return graph.addInitializer(Tensor.fromArray(name, elemType, dims, array), true);
}

export function int64s(graph: Graph, name: string, values: readonly number[], dims: number[] = [values.length]): Value {
  return constant(graph, name, DataType.INT64, dims, values);
}

/** Adds a node; `outputs` is a count or a list of names. */
export function op(
  graph: Graph,
  opType: string,
  inputs: readonly (Value | undefined)[],
  options: { attributes?: Attribute[]; outputs?: number | string[]; domain?: string; name?: string } = {},
): Node {
  return graph.addNode({ opType, inputs, attributes: options.attributes, outputs: options.outputs ?? 1, domain: options.domain, name: options.name });
}

/** Returns output `index` of `node` (default the first). */
export function out(node: Node, index = 0): Value {
  return node.outputs[index];
}

/** Infers the model and returns the report. */
export function infer(model: Model): InferenceReport {
  return inferShapes(model);
}

/** Writes a value's type as `FLOAT[batch,4]`, the form the assertions compare. */
export function typeOf(value: Value): string {
  return formatType(value.type);
}
