import { PeftcError } from "../errors";
import type { Graph } from "../ir/graph";
import type { Value } from "../ir/value";
import { tensorType } from "../ir/types";
import { type DataType, elementTypeName } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import type { ParameterMethod, TrainableParameter } from "./parameters";

// Trainable tensors are graph inputs without a default initializer. An
// initializer that is also a graph input would be a default a caller can
// override, but onnxruntime-node 1.31 lists only inputs without an
// initializer in `inputNames` and ignores feeds for the others, so a default
// could never be replaced from Node. The initial values go to
// params.safetensors instead, and the runtime feeds them.

/** Adds a new trainable tensor to the main graph as a graph input, and returns it with its initial values. */
export function addTrainableTensor(graph: Graph, name: string, dtype: DataType, shape: number[], values: Float32Array): { value: Value; tensor: Tensor } {
  if (graph.lookup(name)) {
    throw new PeftcError("E_IR_INVARIANT", `cannot add trainable tensor "${name}": the model already has a value of that name. Rename the module or report the clash.`, { value: name });
  }
  const value = graph.addInput(name, tensorType(dtype, [...shape]));
  return { value, tensor: Tensor.fromArray(name, dtype, shape, values) };
}

/** Makes an existing initializer of the main graph trainable: it becomes a graph input, and its values are returned. */
export function unfreezeInitializer(graph: Graph, value: Value): Tensor {
  const tensor = value.initializer;
  if (!tensor || value.graph !== graph) {
    throw new PeftcError("E_IR_INVARIANT", `cannot unfreeze "${value.name}": it is not an initializer of the main graph.`, { value: value.name });
  }
  graph.removeInitializer(value);
  value.type = tensorType(tensor.dtype, [...tensor.dims]);
  if (!value.isGraphInput) graph.inputs.push(value);
  return tensor;
}

/** Builds the parameter-table row of a trainable tensor. */
export function parameterRow(tensor: Tensor, method: ParameterMethod, module: string, init: string, created: boolean): TrainableParameter {
  return { name: tensor.name, shape: [...tensor.dims], dtype: elementTypeName(tensor.dtype), init, module, method, created, tensor };
}
