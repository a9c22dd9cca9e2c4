import { layerIndexOf, matchName, nameSegments } from "../../../compiler/match/name-patterns";

describe("layerIndexOf", () => {
  test.each([
    ["model.layers.3.self_attn.q_proj.weight", 3],
    ["/model/layers.3/self_attn/q_proj/MatMul", 3],
    ["transformer.h.11.mlp.c_fc.weight", 11],
    ["bert.encoder.layer.2.attention.self.query.bias", 2],
    ["tf_bert/bert/encoder/layer_._7/attention/self/query/Tensordot/Reshape_1:0_resize", 7],
    ["blocks.4.attn.qkv.weight", 4],
    ["p_model_layers_5_self_attn_q_proj_weight", 5],
    ["model.layers.1.mlp.experts.0.up_proj.weight", 1],
  ])("%s is layer %d", (name, layer) => {
    expect(layerIndexOf(name)).toBe(layer);
  });

  test.each([["onnx::MatMul_123"], ["model.embed_tokens.weight"], ["MatMul_17"], ["l0.q.w"]])("%s has no layer", (name) => {
    expect(layerIndexOf(name)).toBeUndefined();
  });
});

describe("matchName", () => {
  test.each([
    ["model.layers.0.self_attn.q_proj.weight", "attn.q"],
    ["model.layers.0.self_attn.o_proj.weight", "attn.o"],
    ["model.layers.0.mlp.gate_proj.weight", "mlp.gate"],
    ["model.layers.0.mlp.down_proj.weight", "mlp.down"],
    ["transformer.h.0.attn.c_attn.weight", "attn.qkv"],
    ["transformer.h.0.attn.c_proj.weight", "attn.o"],
    ["transformer.h.0.mlp.c_fc.weight", "mlp.up"],
    ["transformer.h.0.mlp.c_proj.weight", "mlp.down"],
    ["bert.encoder.layer.0.attention.self.key.weight", "attn.k"],
    ["bert.encoder.layer.0.attention.output.dense.weight", "attn.o"],
    ["bert.encoder.layer.0.intermediate.dense.weight", "mlp.up"],
    ["bert.encoder.layer.0.output.dense.weight", "mlp.down"],
    ["transformer.h.0.self_attention.query_key_value.weight", "attn.qkv"],
    ["transformer.h.0.self_attention.dense.weight", "attn.o"],
    ["transformer.h.0.mlp.dense_h_to_4h.weight", "mlp.up"],
    ["transformer.h.0.mlp.dense_4h_to_h.weight", "mlp.down"],
    ["h.0.mlp.fc_in.weight", "mlp.up"],
    ["/fc2/MatMul", "mlp.down"],
    ["/encoder_attn/q_proj/MatMul", "xattn.q"],
    ["/self_attn/out_proj/MatMul", "attn.o"],
    ["p_model_layers_0_mlp_gate_up_proj_weight::T10", "mlp.gate_up"],
    ["model.embed_tokens.weight", "embed.tokens"],
    ["transformer.wpe.weight", "embed.positions"],
    ["lm_head.weight", "head"],
    ["model.layers.0.post_attention_layernorm.weight", "norm"],
  ])("%s is %s", (name, role) => {
    expect(matchName(name)?.role).toBe(role);
  });

  test.each([["onnx::MatMul_656"], ["MatMul_17"], ["l0.q.w"], ["209"]])("%s has no role", (name) => {
    expect(matchName(name)).toBeUndefined();
  });

  test("BERT norm slots", () => {
    expect(matchName("bert.encoder.layer.0.attention.output.LayerNorm.weight")?.slot).toBe("attn_norm");
    expect(matchName("bert.encoder.layer.0.output.LayerNorm.weight")?.slot).toBe("mlp_norm");
  });
});

describe("nameSegments", () => {
  test("torch.export underscores split at known words", () => {
    expect(nameSegments("p_model_layers_0_self_attn_q_proj_weight")).toEqual(["p", "model", "layers", "0", "self_attn", "q_proj", "weight"]);
  });

  test("TF layer_._N", () => {
    expect(nameSegments("encoder/layer_._3/attention")).toEqual(["encoder", "layer_", "3", "attention"]);
  });
});
