import { type Attribute, AttributeType } from "../../../compiler/ir/attribute";
import type { Value } from "../../../compiler/ir/value";
import { type DiscoveryJson, discoverModules, discoveryToJson } from "../../../compiler/match";
import { TinyGraph } from "./tiny-graphs";

const SEQ = 4;
const HIDDEN = 32;
const HEADS = 4;
const HEAD_DIM = 8;

function ints(name: string, values: number[]): Attribute {
  return { name, type: AttributeType.INTS, value: values.map(BigInt) };
}

function int(name: string, value: number): Attribute {
  return { name, type: AttributeType.INT, value: BigInt(value) };
}

function linear(t: TinyGraph, x: Value, inFeatures: number, outFeatures: number): Value {
  return t.op("MatMul", [x, t.weight("onnx::MatMul", [inFeatures, outFeatures])]);
}

/** Reshapes [1, seq, heads * head_dim] to [1, heads, seq, head_dim]. */
function toHeads(t: TinyGraph, x: Value, heads: number): Value {
  const split = t.op("Reshape", [x, t.ints("shape", [1, SEQ, heads, HEAD_DIM])]);
  return t.op("Transpose", [split], { attributes: [ints("perm", [0, 2, 1, 3])] });
}

/** Repeats [1, kv_heads, seq, head_dim] to [1, heads, seq, head_dim] as transformers' repeat_kv exports. */
function repeatKv(t: TinyGraph, x: Value, kvHeads: number, heads: number): Value {
  const unsqueezed = t.op("Unsqueeze", [x, t.ints("axes", [2])]);
  const expanded = t.op("Expand", [unsqueezed, t.ints("expand", [1, kvHeads, heads / kvHeads, SEQ, HEAD_DIM])]);
  return t.op("Reshape", [expanded, t.ints("shape", [1, heads, SEQ, HEAD_DIM])]);
}

/** Applies rotate_half rotary to the first `rotaryDim` dims of [1, heads, seq, head_dim], passing the rest through. */
function rotary(t: TinyGraph, x: Value, rotaryDim: number): Value {
  const slice = (value: Value, start: number, end: number): Value => t.op("Slice", [value, t.ints("starts", [start]), t.ints("ends", [end]), t.ints("axes", [-1])]);
  const rotated = slice(x, 0, rotaryDim);
  const passed = slice(x, rotaryDim, HEAD_DIM);
  const half = rotaryDim / 2;
  const turned = t.op("Concat", [t.op("Neg", [slice(rotated, half, rotaryDim)]), slice(rotated, 0, half)], { attributes: [int("axis", -1)] });
  const cos = t.op("Mul", [rotated, t.weight("cos", [SEQ, rotaryDim])]);
  const sin = t.op("Mul", [turned, t.weight("sin", [SEQ, rotaryDim])]);
  return t.op("Concat", [t.op("Add", [cos, sin]), passed], { attributes: [int("axis", -1)] });
}

/** Builds the decomposed core on [1, heads, seq, head_dim] inputs, then the output projection. */
function core(t: TinyGraph, q: Value, k: Value, v: Value): Value {
  const scores = t.op("MatMul", [q, t.op("Transpose", [k], { attributes: [ints("perm", [0, 1, 3, 2])] })], { name: "scores" });
  const context = t.op("MatMul", [t.op("Softmax", [scores], { name: "softmax" }), v], { name: "context" });
  const merged = t.op("Transpose", [context], { attributes: [ints("perm", [0, 2, 1, 3])] });
  return linear(t, t.op("Reshape", [merged, t.ints("shape", [1, SEQ, HIDDEN])]), HIDDEN, HIDDEN);
}

function discover(t: TinyGraph, output: Value): DiscoveryJson {
  t.output(output);
  return discoveryToJson(discoverModules(t.model));
}

/** GQA block: 4 query heads, 2 key/value heads repeated before the core, and rotary on `rotaryDim` dims. */
function gqaBlock(rotaryDim: number | undefined): DiscoveryJson {
  const t = new TinyGraph();
  const x = t.input("x", [1, SEQ, HIDDEN]);
  const kvHeads = 2;
  let q = toHeads(t, linear(t, x, HIDDEN, HIDDEN), HEADS);
  let k = toHeads(t, linear(t, x, HIDDEN, kvHeads * HEAD_DIM), kvHeads);
  const v = toHeads(t, linear(t, x, HIDDEN, kvHeads * HEAD_DIM), kvHeads);
  if (rotaryDim !== undefined) [q, k] = [rotary(t, q, rotaryDim), rotary(t, k, rotaryDim)];
  return discover(t, core(t, q, repeatKv(t, k, kvHeads, HEADS), repeatKv(t, v, kvHeads, HEADS)));
}

/** Fused QKV split on the hidden axis: all of Q, then K, then V. */
function contiguousBlock(): DiscoveryJson {
  const t = new TinyGraph();
  const x = t.input("x", [1, SEQ, HIDDEN]);
  const fused = linear(t, x, HIDDEN, 3 * HIDDEN);
  const [q, k, v] = t.node("Split", [fused, t.ints("split", [HIDDEN, HIDDEN, HIDDEN])], { attributes: [int("axis", 2)], outputs: 3 }).outputs;
  return discover(t, core(t, toHeads(t, q, HEADS), toHeads(t, k, HEADS), toHeads(t, v, HEADS)));
}

/** Fused QKV viewed as [batch, seq, heads, 3, head_dim] and split per head, as Megatron and BLOOM lay it out. */
function interleavedBlock(): DiscoveryJson {
  const t = new TinyGraph();
  const x = t.input("x", [1, SEQ, HIDDEN]);
  const grouped = t.op("Reshape", [linear(t, x, HIDDEN, 3 * HIDDEN), t.ints("shape", [1, SEQ, HEADS, 3, HEAD_DIM])]);
  const parts = t.node("Split", [grouped, t.ints("split", [1, 1, 1])], { attributes: [int("axis", 3)], outputs: 3 }).outputs;
  const [q, k, v] = parts.map((part) => t.op("Transpose", [t.op("Squeeze", [part, t.ints("axes", [3])])], { attributes: [ints("perm", [0, 2, 1, 3])] }));
  return discover(t, core(t, q, k, v));
}

/** Fused QKV viewed as [batch, seq, kv_groups, q_per_group + 2, head_dim]: 2 groups of 2 query heads, one key and one value head each. */
function groupedBlock(): DiscoveryJson {
  const t = new TinyGraph();
  const x = t.input("x", [1, SEQ, HIDDEN]);
  const groups = 2;
  const width = groups * 4 * HEAD_DIM;
  const grouped = t.op("Reshape", [linear(t, x, HIDDEN, width), t.ints("shape", [1, SEQ, groups, 4, HEAD_DIM])]);
  const [qPart, kPart, vPart] = t.node("Split", [grouped, t.ints("split", [2, 1, 1])], { attributes: [int("axis", 3)], outputs: 3 }).outputs;
  const toFront = (value: Value): Value => t.op("Transpose", [value], { attributes: [ints("perm", [0, 2, 1, 3])] });
  const q = toFront(t.op("Reshape", [qPart, t.ints("shape", [1, SEQ, HEADS, HEAD_DIM])]));
  const [k, v] = [kPart, vPart].map((part) => repeatKv(t, toFront(t.op("Squeeze", [part, t.ints("axes", [3])])), groups, HEADS));
  return discover(t, core(t, q, k, v));
}

/** Fused QKV whose first two parts are joined again before reaching the core, so no part maps to Q or K alone. */
function rejoinedBlock(): DiscoveryJson {
  const t = new TinyGraph();
  const x = t.input("x", [1, SEQ, HIDDEN]);
  const fused = linear(t, x, HIDDEN, 3 * HIDDEN);
  const [first, second, v] = t.node("Split", [fused, t.ints("split", [HIDDEN, HIDDEN, HIDDEN])], { attributes: [int("axis", 2)], outputs: 3 }).outputs;
  const joined = t.op("Concat", [first, second], { attributes: [int("axis", 2)] });
  const [q, k] = t.node("Split", [joined, t.ints("split", [HIDDEN, HIDDEN])], { attributes: [int("axis", 2)], outputs: 2 }).outputs;
  return discover(t, core(t, toHeads(t, q, HEADS), toHeads(t, k, HEADS), toHeads(t, v, HEADS)));
}

describe("attention blocks", () => {
  test("GQA head counts", () => {
    const [block] = gqaBlock(undefined).attention!;
    expect(block.heads).toBe(4);
    expect(block.kvHeads).toBe(2);
    expect(block.headDim).toBe(HEAD_DIM);
    expect(block.rotary).toBeNull();
    expect(block.core).toEqual({ form: "decomposed", opType: null, scores: "scores", softmax: "softmax", context: "context", fused: null });
  });

  test("partial rotary dim", () => {
    const [block] = gqaBlock(4).attention!;
    expect(block.rotary).toEqual({ form: "rotate_half", query: true, key: true, rotaryDim: 4 });
    expect(block.headDim).toBe(HEAD_DIM);
  });

  test("full rotary dim", () => {
    const [block] = gqaBlock(HEAD_DIM).attention!;
    expect(block.rotary?.rotaryDim).toBe(HEAD_DIM);
  });

  test("RotaryEmbedding op on Q and K", () => {
    const t = new TinyGraph();
    const x = t.input("x", [1, SEQ, HIDDEN]);
    const positions = t.input("position_ids", [1, SEQ]);
    const rotate = (value: Value): Value =>
      t.op("RotaryEmbedding", [value, t.weight("cos_cache", [SEQ, 2]), t.weight("sin_cache", [SEQ, 2]), positions], { domain: "com.microsoft", attributes: [int("rotary_embedding_dim", 4), int("num_heads", HEADS)] });
    const [q, k, v] = [0, 1, 2].map(() => toHeads(t, linear(t, x, HIDDEN, HIDDEN), HEADS));
    const [block] = discover(t, core(t, rotate(q), rotate(k), v)).attention!;
    expect(block.rotary).toEqual({ form: "com.microsoft::RotaryEmbedding", query: true, key: true, rotaryDim: 4 });
  });

  test("contiguous fused QKV", () => {
    const json = contiguousBlock();
    const [block] = json.attention!;
    expect(block.q).toEqual(["layers.0.attn.qkv"]);
    expect(block.qkvLayout).toEqual({ layout: "contiguous", order: ["q", "k", "v"], widths: { q: HIDDEN, k: HIDDEN, v: HIDDEN }, groups: null, headDim: null, message: null });
    expect(block.heads).toBe(HEADS);
    expect(block.headDim).toBe(HEAD_DIM);
  });

  test("interleaved fused QKV", () => {
    const [block] = interleavedBlock().attention!;
    expect(block.q).toEqual(["layers.0.attn.qkv"]);
    expect(block.qkvLayout).toEqual({ layout: "interleaved", order: ["q", "k", "v"], widths: { q: HEAD_DIM, k: HEAD_DIM, v: HEAD_DIM }, groups: HEADS, headDim: HEAD_DIM, message: null });
    expect([block.heads, block.kvHeads, block.headDim]).toEqual([HEADS, HEADS, HEAD_DIM]);
  });

  test("interleaved GQA fused QKV", () => {
    const [block] = groupedBlock().attention!;
    expect(block.qkvLayout).toEqual({ layout: "interleaved", order: ["q", "k", "v"], widths: { q: 2 * HEAD_DIM, k: HEAD_DIM, v: HEAD_DIM }, groups: 2, headDim: HEAD_DIM, message: null });
    expect([block.heads, block.kvHeads, block.headDim]).toEqual([4, 2, HEAD_DIM]);
  });

  test("untraceable fused QKV is ambiguous", () => {
    const [block] = rejoinedBlock().attention!;
    expect(block.qkvLayout?.layout).toBe("ambiguous");
    expect(block.qkvLayout?.order).toBeNull();
    expect(block.qkvLayout?.message).toMatch(/could not each be traced/);
  });

  test("GroupQueryAttention attributes", () => {
    const t = new TinyGraph();
    const x = t.input("x", [1, SEQ, HIDDEN]);
    const [q, k, v] = [HIDDEN, 16, 16].map((width) => linear(t, x, HIDDEN, width));
    const past = t.input("past", [1, 2, 0, HEAD_DIM]);
    const lengths = t.input("seqlens_k", [1]);
    const total = t.input("total_sequence_length", []);
    const gqa = t.node("GroupQueryAttention", [q, k, v, past, past, lengths, total], { domain: "com.microsoft", attributes: [int("num_heads", 4), int("kv_num_heads", 2)], outputs: 3 });
    const [block] = discover(t, linear(t, gqa.outputs[0], HIDDEN, HIDDEN)).attention!;
    expect(block.core).toEqual({ form: "fused", opType: "com.microsoft::GroupQueryAttention", scores: null, softmax: null, context: null, fused: "GroupQueryAttention" });
    expect([block.heads, block.kvHeads, block.headDim]).toEqual([4, 2, HEAD_DIM]);
    expect(block.source).toBe("num_heads and kv_num_heads attributes");
  });

  test("packed Attention weight is attn.qkv", () => {
    const t = new TinyGraph();
    const x = t.input("x", [1, SEQ, HIDDEN]);
    const attention = t.op("Attention", [x, t.weight("qkv_weight", [HIDDEN, 80]), t.weight("qkv_bias", [80])], {
      domain: "com.microsoft",
      attributes: [int("num_heads", HEADS), ints("qkv_hidden_sizes", [HIDDEN, HIDDEN, 16])],
    });
    const json = discover(t, linear(t, attention, 16, HIDDEN));
    const packed = json.modules.find((module) => module.role === "attn.qkv");
    expect(packed).toMatchObject({ path: "layers.0.attn.qkv", form: "com.microsoft::Attention", weight: "qkv_weight", bias: "qkv_bias", roleFrom: "structure" });
    expect(json.unrecognised).toEqual([]);
    const [block] = json.attention!;
    expect(block.qkvLayout).toEqual({ layout: "contiguous", order: ["q", "k", "v"], widths: { q: HIDDEN, k: HIDDEN, v: 16 }, groups: null, headDim: null, message: null });
    expect([block.heads, block.headDim]).toEqual([HEADS, HEAD_DIM]);
  });

  test("no Reshape leaves heads unknown", () => {
    const t = new TinyGraph();
    const x = t.input("x", [1, SEQ, HIDDEN]);
    const [q, k, v] = [0, 1, 2].map(() => linear(t, x, HIDDEN, HIDDEN));
    const scores = t.op("MatMul", [q, t.op("Transpose", [k], { attributes: [ints("perm", [0, 2, 1])] })]);
    const context = t.op("MatMul", [t.op("Softmax", [scores]), v]);
    const [block] = discover(t, linear(t, context, HIDDEN, HIDDEN)).attention!;
    expect([block.heads, block.kvHeads, block.headDim, block.source]).toEqual([null, null, null, null]);
  });
});
