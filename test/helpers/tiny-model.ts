import { DataType } from "../../compiler/onnx/dtype";
import { Tensor } from "../../compiler/onnx/tensor";
import { Model } from "../../compiler/ir/model";
import { tensorType } from "../../compiler/ir/types";

/**
 * Builds `y = Relu(x @ W + b)` with x: FLOAT[batch, 4], W: [4, 3], b: [3].
 * Small enough to reason about, big enough to exercise every link kind.
 */
export function tinyLinearModel(weights = Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 4)): Model {
  const model = new Model({ irVersion: 8, opsetImports: new Map([["", 17]]), graphName: "tiny" });
  const graph = model.graph;
  const x = graph.addInput("x", tensorType(DataType.FLOAT, ["batch", 4]));
  const w = graph.addInitializer(Tensor.fromArray("W", DataType.FLOAT, [4, 3], weights), true);
  const b = graph.addInitializer(Tensor.fromArray("b", DataType.FLOAT, [3], Float32Array.from([0.5, -0.5, 0])), true);
  const matmul = graph.addNode({ opType: "MatMul", name: "/linear/MatMul", inputs: [x, w], outputs: ["xw"] });
  const add = graph.addNode({ opType: "Add", name: "/linear/Add", inputs: [matmul.outputs[0], b], outputs: ["xwb"] });
  const relu = graph.addNode({ opType: "Relu", name: "/act/Relu", inputs: [add.outputs[0]], outputs: ["y"] });
  relu.outputs[0].type = tensorType(DataType.FLOAT, ["batch", 3]);
  graph.addOutput(relu.outputs[0]);
  return model;
}
