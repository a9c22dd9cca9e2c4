import * as path from "node:path";
import { inferShapes, unsupportedOpTypes } from "../../../../compiler/ir/infer";
import { sameDim } from "../../../../compiler/ir/infer/dims";
import { loadModel } from "../../../../compiler/ir/io";
import { Model } from "../../../../compiler/ir/model";
import { forEachGraph } from "../../../../compiler/ir/traverse";
import { Dim, formatType } from "../../../../compiler/ir/types";
import { CORPUS_DIR, describeCorpus } from "../../../helpers/corpus";

/** Corpus graphs onnxruntime cannot run: inference is checked against their declared types instead. */

function load(relative: string): Model {
  return loadModel(path.join(CORPUS_DIR, relative), { allowMissingExternalData: true });
}

/** Removes every declared type but the graph inputs', so inference alone must produce the rest. */
function forgetDeclaredTypes(model: Model): void {
  forEachGraph(model.graph, (graph) => {
    for (const value of graph.values) if (!value.isGraphInput && !value.isInitializer) value.type = undefined;
  });
}

function outputShapes(model: Model): Dim[][] {
  return model.graph.outputs.map((output) => (output.type?.kind === "tensor" ? (output.type.shape ?? []) : []));
}

const GRAPH_ONLY = [
  ["phi35-mini-2l-graphonly/model_microsoft_Phi-3_5-mini-instruct-custom-default-d1rt1.onnx", 32064, 32, 96],
  ["phi4-mini-2l-graphonly/microsoft_Phi-4-mini-reasoning-custom-default-f32-cpu.onnx", 200064, 8, 128],
] as const;

describeCorpus("shape inference on graph-only corpus models", () => {
  it.each(GRAPH_ONLY)("%s keeps its declared outputs", (relative) => {
    const model = load(relative);
    const declared = model.graph.outputs.map((output) => formatType(output.type));
    const report = inferShapes(model);
    expect(unsupportedOpTypes(report)).toEqual([]);
    expect(report.failures).toEqual([]);
    expect(report.conflicts).toEqual([]);
    expect(report.incomplete).toEqual([]);
    expect(model.graph.outputs.map((output) => formatType(output.type))).toEqual(declared);
  });

  it.each(GRAPH_ONLY)("%s infers logits and caches without declarations", (relative, vocabulary, kvHeads, headSize) => {
    const model = load(relative);
    forgetDeclaredTypes(model);
    const report = inferShapes(model);
    expect(report.failures).toEqual([]);
    const [logits, ...caches] = outputShapes(model);
    expect(logits.length).toBe(3);
    expect([logits[0], sameDim(logits[1], "cache+seq"), logits[2]]).toEqual(["batch", true, vocabulary]);
    for (const cache of caches) {
      expect([cache[0], cache[1], sameDim(cache[2], "cache_length+cache+seq"), cache[3]]).toEqual(["batch", kvHeads, true, headSize]);
    }
  });

  it("infers phi4's attention through its model-local function", () => {
    const model = load(GRAPH_ONLY[1][0]);
    inferShapes(model);
    const calls = model.graph.nodes.filter((node) => node.opType === "aten_scaled_dot_product_attention_default");
    expect(calls.map((node) => formatType(node.outputs[0].type))).toEqual(["FLOAT[batch,24,cache+seq,128]", "FLOAT[batch,24,cache+seq,128]"]);
  });

  it("infers test_swiglu at opset 28", () => {
    const model = load("onnx-node-tests/test_swiglu/model.onnx");
    forgetDeclaredTypes(model);
    const report = inferShapes(model);
    expect(report.unsupported).toEqual([]);
    expect(formatType(model.graph.outputs[0].type)).toBe("FLOAT[2,4]");
  });

  it("reports the bloom training graph's undocumented ops by name", () => {
    const model = load("bloom-3layer-training-ort/3layer_bloom_optimized_training.onnx");
    const report = inferShapes(model);
    expect(unsupportedOpTypes(report)).toEqual([
      "com.microsoft::BiasFastGeluGrad_dX",
      "com.microsoft::BroadcastGradientArgs",
      "com.microsoft::ConcatTraining",
      "com.microsoft::LayerNormalizationGrad",
      "com.microsoft::SliceGrad",
      "com.microsoft::SoftmaxCrossEntropyLossInternal",
      "com.microsoft::SoftmaxCrossEntropyLossInternalGrad",
      "com.microsoft::SoftmaxGrad_13",
      "com.microsoft::YieldOp",
      "org.pytorch.aten::ATen",
    ]);
    expect(report.failures).toEqual([]);
    expect(report.conflicts).toEqual([]);
    const forward = model.graph.nodes.find((node) => node.opType === "LayerNormalization");
    expect(formatType(forward?.outputs[0].type)).toBe("FLOAT16[inputs_input_ids_dim0,inputs_attention_mask_dim1,1024]");
  });
});
