import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { Expansion } from "../../../compiler/autodiff/expand";
import { GradBuilder } from "../../../compiler/autodiff/grad-builder";
import type { GradientContext } from "../../../compiler/autodiff/rule";
import { expandAttention, expandGroupQueryAttention, expandMultiHeadAttention } from "../../../compiler/autodiff/rules/attention";
import { type Attribute, attr } from "../../../compiler/ir/attribute";
import { inferShapes } from "../../../compiler/ir/infer";
import { saveModel } from "../../../compiler/ir/io";
import { Model } from "../../../compiler/ir/model";
import { tensorType } from "../../../compiler/ir/types";
import type { Graph } from "../../../compiler/ir/graph";
import type { Value } from "../../../compiler/ir/value";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { type CheckInput, gradCheck } from "./gradcheck";

afterAll(removeTempDirs);

const MICROSOFT = { "com.microsoft": 1 };
// The decomposition and onnxruntime's kernels sum in different orders, so float32 outputs differ by rounding.
const FORWARD_TOLERANCE = 1e-5;
// float32 central differences with a step of 1e-3 leave about 1e-4 of rounding in each slope.
const GRADIENT_TOLERANCE = 2e-3;

type AttentionOp = "Attention" | "MultiHeadAttention" | "GroupQueryAttention";

/**
 * One fused-op configuration: inputs by the op's input index (undefined:
 * omitted). GroupQueryAttention cases use a head size of 8 because
 * onnxruntime's CPU kernel requires a multiple of 8.
 */
interface AttentionCase {
  name: string;
  op: AttentionOp;
  inputs: (CheckInput | undefined)[];
  attributes: Attribute[];
  /** Outputs the node produces; the loss reads all of them. */
  outputs: number;
  /** Element count of each output, so the flattened outputs get static shapes where inference cannot size the caches. */
  outputSizes?: number[];
}

/**
 * GroupQueryAttention's total_sequence_length goes in as an initializer:
 * onnxruntime's shape inference sizes present_key from it only when it is
 * constant, and otherwise assumes the past buffer's length, which
 * contradicts the backward graph's static shapes when the loss reads the
 * caches.
 */
const CONSTANT_INPUTS = new Set(["total_sequence_length"]);

/** Adds `input` to the graph as an int32 initializer with its given values. */
function addConstant(graph: Graph, input: CheckInput): Value {
  return graph.addInitializer(Tensor.fromArray(input.name, DataType.INT32, input.dims, Int32Array.from(input.values!)), true);
}

const EXPANDERS: Record<AttentionOp, (e: Expansion, context: GradientContext) => (Value | undefined)[]> = {
  Attention: expandAttention,
  MultiHeadAttention: expandMultiHeadAttention,
  GroupQueryAttention: expandGroupQueryAttention,
};

const float = (name: string, dims: number[]): CheckInput => ({ name, dims });
const int32 = (name: string, dims: number[], values: number[]): CheckInput => ({ name, dims, values, dtype: "int32" });

const CASES: AttentionCase[] = [
  {
    name: "Attention packed QKV with bias",
    op: "Attention",
    inputs: [float("x", [2, 3, 4]), float("weights", [4, 12]), float("bias", [12])],
    attributes: [attr.int("num_heads", 2)],
    outputs: 1,
  },
  {
    name: "Attention unidirectional",
    op: "Attention",
    inputs: [float("x", [2, 3, 4]), float("weights", [4, 12]), float("bias", [12])],
    attributes: [attr.int("num_heads", 2), attr.int("unidirectional", 1)],
    outputs: 1,
  },
  {
    name: "Attention 2-D mask_index and scale",
    op: "Attention",
    inputs: [float("x", [2, 3, 4]), float("weights", [4, 12]), float("bias", [12]), int32("mask_index", [2, 3], [1, 1, 0, 1, 0, 1])],
    attributes: [attr.int("num_heads", 2), attr.float("scale", 0.3)],
    outputs: 1,
  },
  {
    name: "Attention qkv_hidden_sizes and attention_bias",
    op: "Attention",
    inputs: [float("x", [2, 3, 4]), float("weights", [4, 16]), float("bias", [16]), undefined, undefined, float("attention_bias", [2, 2, 3, 3])],
    attributes: [attr.int("num_heads", 2), attr.ints("qkv_hidden_sizes", [4, 4, 8])],
    outputs: 1,
  },
  {
    name: "MultiHeadAttention cross-attention with bias",
    op: "MultiHeadAttention",
    inputs: [float("query", [2, 3, 4]), float("key", [2, 5, 4]), float("value", [2, 5, 4]), float("bias", [12])],
    attributes: [attr.int("num_heads", 2)],
    outputs: 1,
  },
  {
    name: "MultiHeadAttention causal with past and present",
    op: "MultiHeadAttention",
    inputs: [
      float("query", [2, 3, 4]),
      float("key", [2, 3, 4]),
      float("value", [2, 3, 4]),
      float("bias", [12]),
      undefined,
      undefined,
      float("past_key", [2, 2, 2, 2]),
      float("past_value", [2, 2, 2, 2]),
    ],
    attributes: [attr.int("num_heads", 2), attr.int("unidirectional", 1)],
    outputs: 3,
    outputSizes: [24, 40, 40],
  },
  {
    name: "MultiHeadAttention 4-D key and value",
    op: "MultiHeadAttention",
    inputs: [float("query", [2, 1, 4]), float("key", [2, 2, 5, 2]), float("value", [2, 2, 5, 2]), float("bias", [12])],
    attributes: [attr.int("num_heads", 2)],
    outputs: 1,
  },
  {
    name: "MultiHeadAttention key_padding_mask and attention_bias",
    op: "MultiHeadAttention",
    inputs: [
      float("query", [2, 3, 4]),
      float("key", [2, 5, 4]),
      float("value", [2, 5, 4]),
      undefined,
      int32("key_padding_mask", [2, 5], [1, 1, 1, 0, 0, 1, 0, 1, 1, 1]),
      float("attention_bias", [2, 2, 3, 5]),
    ],
    attributes: [attr.int("num_heads", 2), attr.float("scale", 0.4)],
    outputs: 1,
  },
  {
    name: "GroupQueryAttention prompt without past",
    op: "GroupQueryAttention",
    inputs: [
      float("query", [2, 3, 32]),
      float("key", [2, 3, 16]),
      float("value", [2, 3, 16]),
      undefined,
      undefined,
      int32("seqlens_k", [2], [2, 2]),
      int32("total_sequence_length", [], [3]),
    ],
    attributes: [attr.int("num_heads", 4), attr.int("kv_num_heads", 2)],
    outputs: 3,
    outputSizes: [192, 96, 96],
  },
  {
    name: "GroupQueryAttention decoding step with past",
    op: "GroupQueryAttention",
    inputs: [
      float("query", [2, 1, 32]),
      float("key", [2, 1, 16]),
      float("value", [2, 1, 16]),
      float("past_key", [2, 2, 2, 8]),
      float("past_value", [2, 2, 2, 8]),
      int32("seqlens_k", [2], [2, 2]),
      int32("total_sequence_length", [], [3]),
    ],
    attributes: [attr.int("num_heads", 4), attr.int("kv_num_heads", 2), attr.float("scale", 0.6)],
    outputs: 3,
    outputSizes: [64, 96, 96],
  },
  {
    name: "GroupQueryAttention one query head per key head",
    op: "GroupQueryAttention",
    inputs: [
      float("query", [1, 2, 16]),
      float("key", [1, 2, 16]),
      float("value", [1, 2, 16]),
      float("past_key", [1, 2, 3, 8]),
      float("past_value", [1, 2, 3, 8]),
      int32("seqlens_k", [1], [4]),
      int32("total_sequence_length", [], [5]),
    ],
    attributes: [attr.int("num_heads", 2), attr.int("kv_num_heads", 2)],
    outputs: 3,
    outputSizes: [32, 80, 80],
  },
];

function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32) * 2 - 1;
  };
}

function feed(input: CheckInput, next: () => number): ort.Tensor {
  const size = input.dims.reduce((a, b) => a * b, 1);
  if (input.dtype === "int32") return new ort.Tensor("int32", Int32Array.from(input.values!), input.dims);
  return new ort.Tensor("float32", Float32Array.from(input.values ?? Array.from({ length: size }, next)), input.dims);
}

/** Runs the fused op and its decomposition side by side in one onnxruntime session; returns both outputs by output index. */
async function runFusedAndExpanded(testCase: AttentionCase): Promise<{ fused: number[][]; expanded: number[][] }> {
  const model = new Model({ irVersion: 9, opsetImports: new Map([["", 17], ...Object.entries(MICROSOFT)]), graphName: "attention" });
  const graph = model.graph;
  const inputs = testCase.inputs.map((input) => {
    if (!input) return undefined;
    if (CONSTANT_INPUTS.has(input.name)) return addConstant(graph, input);
    return graph.addInput(input.name, tensorType(input.dtype === "int32" ? DataType.INT32 : DataType.FLOAT, input.dims));
  });
  const node = graph.addNode({ opType: testCase.op, domain: "com.microsoft", name: "fused", inputs, attributes: testCase.attributes, outputs: testCase.outputs });
  inferShapes(model);

  const b = new GradBuilder(graph, 17, "/expanded");
  const context: GradientContext = { node, b, outputGrads: [], needsGrad: () => false };
  const expanded = EXPANDERS[testCase.op](new Expansion(b), context);
  node.outputs.forEach((output, index) => {
    graph.addOutput(graph.addNode({ opType: "Identity", inputs: [output], outputs: [`fused_${index}`] }).outputs[0]);
    graph.addOutput(graph.addNode({ opType: "Identity", inputs: [expanded[index]], outputs: [`expanded_${index}`] }).outputs[0]);
  });

  const file = path.join(makeTempDir("peftc-attention-"), "attention.onnx");
  saveModel(model, file);
  const session = await openSession(file);
  const next = random(7);
  const fed = testCase.inputs.filter((input): input is CheckInput => input !== undefined && !CONSTANT_INPUTS.has(input.name));
  const feeds = Object.fromEntries(fed.map((input) => [input.name, feed(input, next)]));
  const results = await session.run(feeds);
  await session.release();
  const read = (name: string): number[] => Array.from(results[name].data as Float32Array);
  return {
    fused: node.outputs.map((_, index) => read(`fused_${index}`)),
    expanded: node.outputs.map((_, index) => read(`expanded_${index}`)),
  };
}

function maxAbsDifference(a: number[], b: number[]): number {
  expect(b).toHaveLength(a.length);
  return a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i])), 0);
}

describe("attention decomposition forward", () => {
  test.each(CASES.map((testCase) => [testCase.name, testCase] as const))("%s matches onnxruntime", async (_name, testCase) => {
    const { fused, expanded } = await runFusedAndExpanded(testCase);
    for (let index = 0; index < testCase.outputs; index++) {
      expect(maxAbsDifference(fused[index], expanded[index])).toBeLessThan(FORWARD_TOLERANCE);
    }
  });
});

describe("attention gradients", () => {
  test.each(CASES.map((testCase) => [testCase.name, testCase] as const))("%s", async (_name, testCase) => {
    const fed = testCase.inputs.filter((input): input is CheckInput => input !== undefined && !CONSTANT_INPUTS.has(input.name));
    const result = await gradCheck(
      fed,
      (ops, values) => {
        const inputs = testCase.inputs.map((input) => input && (CONSTANT_INPUTS.has(input.name) ? addConstant(ops.graph, input) : values[input.name]));
        const outputs = ops.node(testCase.op, inputs, testCase.attributes, testCase.outputs, "com.microsoft");
        if (outputs.length === 1) return outputs[0];
        // Flattening and concatenating every output lets the loss read present_key and present_value too.
        const flat = outputs.map((output, index) => ops.op("Reshape", [output, ops.ints([testCase.outputSizes?.[index] ?? -1])]));
        return ops.op("Concat", flat, [attr.int("axis", 0)]);
      },
      { dtype: "float32", epsilon: 1e-3, domains: MICROSOFT },
    );
    expect(result.maxError).toBeLessThan(GRADIENT_TOLERANCE);
  });
});

describe("attention rejections", () => {
  const gqaInputs = CASES.find((testCase) => testCase.name === "GroupQueryAttention prompt without past")!.inputs;

  test.each([
    ["do_rotary", attr.int("do_rotary", 1)],
    ["local_window_size", attr.int("local_window_size", 2)],
    ["softcap", attr.float("softcap", 30)],
  ])("GroupQueryAttention %s raises E_UNKNOWN_DOMAIN", async (name, attribute) => {
    const present = gqaInputs.filter((input): input is CheckInput => input !== undefined);
    const attributes = [attr.int("num_heads", 4), attr.int("kv_num_heads", 2), attribute];
    const check = gradCheck(
      present,
      (ops, values) => ops.op("GroupQueryAttention", gqaInputs.map((input) => input && values[input.name]), attributes, 3, "com.microsoft"),
      { dtype: "float32", epsilon: 1e-3, domains: MICROSOFT },
    );
    await expect(check).rejects.toMatchObject({ code: "E_UNKNOWN_DOMAIN" });
    await expect(check).rejects.toThrow(new RegExp(`GroupQueryAttention \\(node "GroupQueryAttention"\\) with attribute ${name}=`));
  });

  test("Attention 1-D mask_index raises E_UNKNOWN_DOMAIN", async () => {
    const inputs = [float("x", [2, 3, 4]), float("weights", [4, 12]), float("bias", [12]), int32("mask_index", [2], [3, 2])];
    const check = gradCheck(
      inputs,
      (ops, { x, weights, bias, mask_index }) => ops.op("Attention", [x, weights, bias, mask_index], [attr.int("num_heads", 2)], 1, "com.microsoft"),
      { dtype: "float32", epsilon: 1e-3, domains: MICROSOFT },
    );
    await expect(check).rejects.toMatchObject({ code: "E_UNKNOWN_DOMAIN" });
    await expect(check).rejects.toThrow(/mask_index "mask_index" of rank 1/);
  });
});
