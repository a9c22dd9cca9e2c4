import * as fs from "node:fs";
import type { Model } from "../../../compiler/ir/model";
import { isFloatType } from "../../../compiler/onnx/dtype";
import { allGraphs } from "../../../compiler/match/graph-walk";
import { type DiscoveryJson, discoverModules, discoveryToJson } from "../../../compiler/match";
import { describeCorpus } from "../../helpers/corpus";
import { type GoldenModel, corpusGoldenModels, fixtureModels, goldenPath, loadGoldenModel } from "./golden-models";

/**
 * Layers each model has, from fixtures/README.md and the corpus README.
 * Zero where the weights are graph inputs (training graphs, AOT graphs) or
 * the graph has no transformer block.
 */
const EXPECTED_LAYERS: Record<string, number> = {
  "fixture.bert-tiny-op14": 2,
  "fixture.bert-tiny-op17": 2,
  "fixture.gpt2-tiny-op14": 2,
  "fixture.gpt2-tiny-op17": 2,
  "fixture.llama-tiny": 2,
  "fixture.demo.base": 2,
  "corpus.aidreams260K.model": 4,
  "corpus.aidreams260K.model_nofold": 4,
  "corpus.aidreams260K.model_with_past": 4,
  "corpus.aidreams260K.model_with_past_nofold": 4,
  "corpus.bert-toy-pt11.bert_toy_optimized": 5,
  "corpus.bloom-3layer-training-ort.3layer_bloom_optimized_training": 0,
  "corpus.genai-gpt2-past-fused-fp16.past": 5,
  "corpus.genai-gpt2-past-fused-fp32.past": 5,
  "corpus.genai-qwen-gqa-fp16.decoder": 2,
  "corpus.gpt2-beamsearch-subgraph.tiny_gpt2_beamsearch": 5,
  "corpus.gpt2-megatron-pt19.gpt2_megatron": 1,
  "corpus.gpt2-past-pt16.gpt2_past": 12,
  "corpus.llama-dort-aot-ee.noopt-llama-custom__0": 0,
  "corpus.llama-dort-aot-ee.noopt-llama-custom__1": 0,
  "corpus.llama-tiny-ee-dynamic.llama_export_dynamic": 1,
  "corpus.llama-tiny-ee-dynamic.llama_export_static": 1,
  "corpus.lora-ref-ort.two_params_lora_model": 0,
  "corpus.phi35-mini-2l-graphonly.model_microsoft_Phi-3_5-mini-instruct-custom-default-d1rt1": 2,
  "corpus.phi4-mini-2l-graphonly.microsoft_Phi-4-mini-reasoning-custom-default-f32-cpu": 2,
  "corpus.tfbert-qa-keras2onnx.TFBertForQuestionAnswering": 24,
  "corpus.torch-berttiny-op17.model": 2,
  "corpus.torch-gpt2tiny-op17.model": 2,
  "corpus.whisper-layer-fused.hf_fp16_decoder_attention_with_past": 1,
  "corpus.whisper-layer-fused.hf_fp32_decoder_attention_with_past": 1,
  "corpus.whisper-layer-fused.hf_fp32_encoder_self_attention": 1,
};

/**
 * Query heads, key/value heads, head dim and rotary dim (null for none) of
 * every attention block, from fixtures/README.md (hidden 64 over 4 heads)
 * and the corpus README. Models not listed are checked by the golden only.
 */
const EXPECTED_HEADS: Record<string, [heads: number, kvHeads: number, headDim: number, rotaryDim: number | null]> = {
  "fixture.bert-tiny-op14": [4, 4, 16, null],
  "fixture.bert-tiny-op17": [4, 4, 16, null],
  "fixture.gpt2-tiny-op14": [4, 4, 16, null],
  "fixture.gpt2-tiny-op17": [4, 4, 16, null],
  "fixture.llama-tiny": [4, 2, 16, 16],
  "fixture.demo.base": [4, 2, 16, 16],
  "corpus.aidreams260K.model": [4, 4, 16, 16],
  "corpus.aidreams260K.model_nofold": [4, 4, 16, 16],
  "corpus.aidreams260K.model_with_past": [4, 4, 16, 16],
  "corpus.aidreams260K.model_with_past_nofold": [4, 4, 16, 16],
  "corpus.bert-toy-pt11.bert_toy_optimized": [4, 4, 8, null],
  "corpus.genai-gpt2-past-fused-fp16.past": [4, 4, 8, null],
  "corpus.genai-gpt2-past-fused-fp32.past": [4, 4, 8, null],
  "corpus.genai-qwen-gqa-fp16.decoder": [4, 2, 16, null],
  "corpus.gpt2-megatron-pt19.gpt2_megatron": [2, 2, 4, null],
  "corpus.gpt2-past-pt16.gpt2_past": [2, 2, 2, null],
  "corpus.llama-dort-aot-ee.noopt-llama-custom__0": [2, 2, 512, 512],
  "corpus.llama-tiny-ee-dynamic.llama_export_dynamic": [2, 2, 8, 8],
  "corpus.llama-tiny-ee-dynamic.llama_export_static": [2, 2, 8, 8],
  "corpus.onnx-node-tests.test_attention_3d.model": [3, 3, 8, null],
  "corpus.onnx-node-tests.test_attention_4d.model": [3, 3, 8, null],
  "corpus.onnx-node-tests.test_attention_4d_gqa_with_past_and_present.model": [9, 3, 8, null],
  "corpus.phi35-mini-2l-graphonly.model_microsoft_Phi-3_5-mini-instruct-custom-default-d1rt1": [32, 32, 96, 96],
  "corpus.phi4-mini-2l-graphonly.microsoft_Phi-4-mini-reasoning-custom-default-f32-cpu": [24, 8, 128, 96],
  "corpus.tfbert-qa-keras2onnx.TFBertForQuestionAnswering": [2, 2, 4, null],
  "corpus.whisper-layer-fused.hf_fp32_decoder_attention_with_past": [2, 2, 5, null],
  "corpus.whisper-layer-fused.hf_fp32_encoder_self_attention": [2, 2, 5, null],
};

/**
 * Activation function of every MLP block and whether it is gated, from
 * fixtures/README.md and the corpus README. Each listed model has one MLP
 * block per layer. Models not listed have no MLP with weights.
 */
const EXPECTED_ACTIVATION: Record<string, [activation: string, gated: boolean]> = {
  "fixture.bert-tiny-op14": ["gelu", false],
  "fixture.bert-tiny-op17": ["gelu", false],
  "fixture.gpt2-tiny-op14": ["gelu_tanh", false],
  "fixture.gpt2-tiny-op17": ["gelu_tanh", false],
  "fixture.llama-tiny": ["silu", true],
  "fixture.demo.base": ["silu", true],
  "corpus.aidreams260K.model": ["silu", true],
  "corpus.aidreams260K.model_nofold": ["silu", true],
  "corpus.aidreams260K.model_with_past": ["silu", true],
  "corpus.aidreams260K.model_with_past_nofold": ["silu", true],
  "corpus.bert-toy-pt11.bert_toy_optimized": ["gelu", false],
  "corpus.genai-gpt2-past-fused-fp16.past": ["gelu_tanh", false],
  "corpus.genai-gpt2-past-fused-fp32.past": ["gelu_tanh", false],
  "corpus.genai-qwen-gqa-fp16.decoder": ["relu", false],
  "corpus.gpt2-beamsearch-subgraph.tiny_gpt2_beamsearch": ["gelu_tanh", false],
  "corpus.gpt2-megatron-pt19.gpt2_megatron": ["gelu_tanh", false],
  "corpus.gpt2-past-pt16.gpt2_past": ["gelu_tanh", false],
  "corpus.llama-tiny-ee-dynamic.llama_export_dynamic": ["silu", true],
  "corpus.llama-tiny-ee-dynamic.llama_export_static": ["silu", true],
  "corpus.phi35-mini-2l-graphonly.model_microsoft_Phi-3_5-mini-instruct-custom-default-d1rt1": ["silu", true],
  "corpus.phi4-mini-2l-graphonly.microsoft_Phi-4-mini-reasoning-custom-default-f32-cpu": ["silu", true],
  "corpus.tfbert-qa-keras2onnx.TFBertForQuestionAnswering": ["gelu", false],
  "corpus.torch-berttiny-op17.model": ["gelu", false],
  "corpus.torch-gpt2tiny-op17.model": ["gelu_tanh", false],
  "corpus.whisper-layer-fused.hf_fp16_decoder_attention_with_past": ["gelu", false],
  "corpus.whisper-layer-fused.hf_fp32_decoder_attention_with_past": ["gelu", false],
  "corpus.whisper-layer-fused.hf_fp32_encoder_self_attention": ["gelu", false],
};

/** Element counts of the float initializers no graph input overrides, by name. */
function floatInitializerSizes(model: Model): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const graph of allGraphs(model.graph)) {
    for (const value of graph.initializers.values()) {
      if (value.isConstant && isFloatType(value.initializer!.dtype)) sizes.set(value.name, value.initializer!.size);
    }
  }
  return sizes;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

function checkModel(model: GoldenModel): void {
  const loaded = loadGoldenModel(model);
  const json = discoveryToJson(discoverModules(loaded));

  test("matches golden", () => {
    const file = goldenPath(model);
    if (!fs.existsSync(file)) throw new Error(`${file} is missing; run: npx tsx test/compiler/match/update-golden.ts`);
    const golden = JSON.parse(fs.readFileSync(file, "utf8")) as DiscoveryJson;
    expect(json).toEqual(golden);
  });

  test("parameters add up", () => {
    const sizes = floatInitializerSizes(loaded);
    const inModules = new Set<string>();
    for (const module of json.modules) {
      for (const name of [module.weight, module.bias]) if (name !== null) inModules.add(name);
      const own = (module.weight === null ? 0 : sizes.get(module.weight)!) + (module.bias === null ? 0 : sizes.get(module.bias)!);
      expect(module.parameterCount).toBe(own);
    }
    const reported = new Set(json.unrecognised.filter((entry) => entry.kind === "initializer").map((entry) => entry.name));
    for (const name of reported) expect(inModules.has(name)).toBe(false);
    const scalars = [...sizes].filter(([name, size]) => size <= 1 && !inModules.has(name)).map(([, size]) => size);
    const accounted = sum([...inModules].map((name) => sizes.get(name)!)) + sum([...reported].map((name) => sizes.get(name)!)) + sum(scalars);
    expect(accounted).toBe(sum(sizes.values()));
  });

  test("layer count", () => {
    const layers = new Set(json.modules.map((module) => module.layer).filter((layer) => layer !== null));
    expect(layers.size).toBe(EXPECTED_LAYERS[model.key] ?? 0);
    expect([...layers].every((layer) => layer! < layers.size)).toBe(true);
  });

  const expectedHeads = EXPECTED_HEADS[model.key];
  if (expectedHeads) {
    test("attention heads", () => {
      const [heads, kvHeads, headDim, rotaryDim] = expectedHeads;
      expect(json.attention!.length).toBeGreaterThan(0);
      for (const block of json.attention!) {
        expect(block.heads).toBe(heads);
        expect(block.kvHeads).toBe(kvHeads);
        expect(block.headDim).toBe(headDim);
        expect(block.rotary?.rotaryDim ?? null).toBe(rotaryDim);
      }
    });
  }

  test("MLP activation", () => {
    const expected = EXPECTED_ACTIVATION[model.key];
    if (!expected) {
      expect(json.mlp).toEqual([]);
      return;
    }
    const [activation, gated] = expected;
    expect(json.mlp!.length).toBe(EXPECTED_LAYERS[model.key]);
    for (const block of json.mlp!) {
      expect(block.activation.function).toBe(activation);
      expect(block.activation.gated).toBe(gated);
      expect(block.activation.reason).toBeNull();
    }
  });

  test("paths are unique", () => {
    const paths = json.modules.map((module) => module.path);
    expect(new Set(paths).size).toBe(paths.length);
  });
}

describe("fixture modules", () => {
  for (const model of fixtureModels()) describe(model.key, () => checkModel(model));
});

describeCorpus("corpus modules", () => {
  for (const model of corpusGoldenModels()) describe(model.key, () => checkModel(model));
});
