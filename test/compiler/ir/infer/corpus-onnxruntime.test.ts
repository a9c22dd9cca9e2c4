import * as fs from "node:fs";
import * as path from "node:path";
import { loadModel } from "../../../../compiler/ir/io";
import { parseDimension } from "../../../../compiler/ir/infer/symbolic";
import { CORPUS_DIR, describeCorpus } from "../../../helpers/corpus";
import { removeTempDirs } from "../../../helpers/temp";
import { ComparisonCase, compareSubgraphWithOnnxRuntime, compareWithOnnxRuntime, expectAgreement } from "./onnxruntime-comparison";

/**
 * Concrete sizes for every corpus graph onnxruntime-node runs (all but the
 * bloom training graph, test_swiglu at opset 28, and phi35/phi4, whose
 * weights are missing). Batch 2, sequence 3 and past 4 where the graph
 * allows. Names the files give to derived sizes are bound to what they
 * stand for (total = past + sequence). Integer inputs get masks of ones,
 * positions that continue the past, token type 0 and token ids below the
 * vocabulary.
 */
const CASES: [string, ComparisonCase][] = [
  ["aidreams260K/model.onnx", { sizes: { batch: 2, sequence: 3 }, vocabulary: 512 }],
  ["aidreams260K/model_nofold.onnx", { sizes: { batch: 2, sequence: 3 }, vocabulary: 512 }],
  ["aidreams260K/model_with_past.onnx", { sizes: { batch: 2, sequence: 3, past_sequence: 4 }, positionStart: 4, vocabulary: 512 }],
  ["aidreams260K/model_with_past_nofold.onnx", { sizes: { batch: 2, sequence: 3, past_sequence: 4 }, positionStart: 4, vocabulary: 512 }],
  ["bert-toy-pt11/bert_toy_optimized.onnx", { sizes: { batch: 2, max_seq_len_in_batch: 3 } }],
  ["tfbert-qa-keras2onnx/TFBertForQuestionAnswering.onnx", { sizes: { batch_size: 2 } }],
  ["torch-berttiny-op17/model.onnx", { sizes: { batch: 2, sequence: 3 } }],
  ["torch-gpt2tiny-op17/model.onnx", { sizes: { batch: 2, sequence: 3 } }],
  // past_i is [2, batch, heads, seq_len, head], so seq_len is the past length. The graph's causal mask allows 8 positions.
  ["gpt2-past-pt16/gpt2_past.onnx", { sizes: { batch_size: 2, seq_len: 4, seq_len_plus_1: 5 } }],
  // The exporter named the logits dims MatMullogits_dim_0 and _1, which are batch and sequence.
  [
    "gpt2-megatron-pt19/gpt2_megatron.onnx",
    { sizes: { batch_size: 2, seq_len: 3, past_seq_len: 4, total_seq_len: 7, MatMullogits_dim_0: 2, MatMullogits_dim_1: 3 }, positionStart: 4 },
  ],
  ["genai-gpt2-past-fused-fp32/past.onnx", { sizes: { batch_size: 2, seq_len: 3, past_seq_len: 4, total_seq_len: 7 }, positionStart: 4 }],
  ["genai-gpt2-past-fused-fp16/past.onnx", { sizes: { batch_size: 2, seq_len: 3, past_seq_len: 4, total_seq_len: 7 }, positionStart: 4 }],
  // onnxruntime's GroupQueryAttention needs batch 1 when more than one new token meets a past, so two shapes are checked.
  ["genai-qwen-gqa-fp16/decoder.onnx", { sizes: { batch_size: 2, seq_len: 1, past_seq_len: 4, total_seq_len: 5 } }],
  ["genai-qwen-gqa-fp16/decoder.onnx", { sizes: { batch_size: 1, seq_len: 3, past_seq_len: 4, total_seq_len: 7 } }],
  // mul_3 and mul_10 are the exporter's names for 1024 * batch and 2 * batch.
  ["llama-tiny-ee-dynamic/llama_export_dynamic.onnx", { sizes: { batch: 2, mul_3: 2048, mul_10: 4 }, vocabulary: 1024 }],
  ["llama-tiny-ee-dynamic/llama_export_static.onnx", { sizes: {}, vocabulary: 1024 }],
  // The LoRA parameters default to empty [4, 0] and [0, 4] initializers.
  ["lora-ref-ort/two_params_lora_model.onnx", { sizes: { dim: 0 } }],
  ["whisper-layer-fused/hf_fp32_decoder_attention_with_past.onnx", { sizes: {} }],
  ["whisper-layer-fused/hf_fp16_decoder_attention_with_past.onnx", { sizes: {} }],
  ["whisper-layer-fused/hf_fp32_encoder_self_attention.onnx", { sizes: {} }],
  [
    "gpt2-beamsearch-subgraph/tiny_gpt2_beamsearch.onnx",
    {
      sizes: { batch_size: 2, sequence_length: 3, max_length: 6, num_return_sequences: 2 },
      values: { max_length: [6], min_length: [1], num_beams: [2], num_return_sequences: [2], length_penalty: [1], repetition_penalty: [1] },
    },
  ],
  ...["test_attention_3d", "test_attention_4d", "test_attention_4d_causal", "test_attention_4d_gqa_with_past_and_present", "test_attention_4d_gqa_with_past_and_present_expanded"].map(
    (name): [string, ComparisonCase] => [`onnx-node-tests/${name}/model.onnx`, { sizes: {} }],
  ),
  ...["test_gelu_tanh_1", "test_layer_normalization_3d_axis_negative_1_epsilon", "test_rms_normalization_3d_axis_negative_1_epsilon", "test_rotary_embedding", "test_rotary_embedding_interleaved"].map(
    (name): [string, ComparisonCase] => [`onnx-node-tests/${name}/model.onnx`, { sizes: {} }],
  ),
];

function describeSizes(options: ComparisonCase): string {
  const sizes = Object.entries(options.sizes).map(([name, size]) => `${name}=${size}`);
  return sizes.length > 0 ? `at ${sizes.join(" ")}` : "(static shapes)";
}

describeCorpus("shape inference against onnxruntime on the corpus", () => {
  afterAll(removeTempDirs);

  const named = CASES.map(([relative, options]): [string, string, ComparisonCase] => [`${relative} ${describeSizes(options)}`, relative, options]);

  it.each(named)("%s", async (_name, relative, options) => {
    expectAgreement(await compareWithOnnxRuntime(path.join(CORPUS_DIR, relative), options));
  });

  it("types the BeamSearch decoder subgraph as onnxruntime runs it", async () => {
    const result = await compareSubgraphWithOnnxRuntime(
      path.join(CORPUS_DIR, "gpt2-beamsearch-subgraph/tiny_gpt2_beamsearch.onnx"),
      "BeamSearch_gpt2",
      "decoder",
      { "": 11, "com.microsoft": 1 },
      { sizes: { batch_size: 2, seq_len: 3, past_seq_len: 4, total_seq_len: 7 }, positionStart: 4 },
    );
    expectAgreement(result);
  });
});

const FIXTURES_DIR = path.resolve(__dirname, "../../../../fixtures");

function fixtureFiles(folder: string): string[] {
  if (!fs.existsSync(folder)) return [];
  return fs.readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) return fixtureFiles(full);
    return entry.name.endsWith(".onnx") ? [full] : [];
  });
}

/** Fixtures use batch 2 and size 3 for every other symbolic input dimension. */
function fixtureCase(file: string): ComparisonCase {
  const sizes: Record<string, number> = {};
  for (const input of loadModel(file).graph.inputs) {
    if (input.type?.kind !== "tensor") continue;
    for (const dim of input.type.shape ?? []) {
      if (typeof dim !== "string") continue;
      for (const term of parseDimension(dim).values()) for (const name of term.factors) sizes[name] = name.toLowerCase().includes("batch") ? 2 : 3;
    }
  }
  return { sizes, vocabulary: 10 };
}

const fixtures = fixtureFiles(FIXTURES_DIR).sort();

(fixtures.length > 0 ? describe : describe.skip)("shape inference against onnxruntime on the fixtures", () => {
  afterAll(removeTempDirs);

  it.each(fixtures.map((file) => [path.relative(FIXTURES_DIR, file), file]))("%s", async (_name, file) => {
    expectAgreement(await compareWithOnnxRuntime(file, fixtureCase(file)));
  });
});
