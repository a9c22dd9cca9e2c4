import { selfAttention } from "../../../../compiler/builder/blocks/attention";
import { causalAttentionMask } from "../../../../compiler/builder/blocks/masks";
import { rotaryInverseFrequencies, rotaryTables } from "../../../../compiler/builder/blocks/rotary";
import { ModelBuilder } from "../../../../compiler/builder/model-builder";
import { dimension } from "../../../../compiler/builder/shape-ops";
import { Model } from "../../../../compiler/ir/model";
import { DataType } from "../../../../compiler/onnx/dtype";
import { createSession, floatTensor, int64Tensor, maxAbsDifference, run } from "../../../fixtures/run-model";
import { sampleInput } from "../block-model";
import { addRows, matmul, softmaxRow, transposed } from "../reference";

const BATCH = 2;
const SEQUENCE = 5;
const ATTENTION_MASK = [
  [1, 1, 1, 1, 1],
  [1, 1, 1, 0, 0],
];

interface Shape {
  hidden: number;
  heads: number;
  kvHeads: number;
}

/** Builds self-attention (up to the merged heads) behind a causal mask, as LLaMA (separate projections, rotary, GQA) or GPT-2 (fused c_attn). */
function attentionModel(shape: Shape, style: "llama" | "gpt2"): Model {
  const builder = new ModelBuilder({ opset: 17 });
  const x = builder.input("x", DataType.FLOAT, ["batch", "sequence", shape.hidden]);
  const attentionMask = builder.input("attention_mask", DataType.INT64, ["batch", "sequence"]);
  const sequence = dimension(builder.root, x, 1);
  const mask = causalAttentionMask(builder.root, attentionMask, sequence);
  const attention = builder.root.child("attn");
  const context =
    style === "llama"
      ? selfAttention(attention, x, {
          ...shape,
          projections: { query: "q_proj", key: "k_proj", value: "v_proj" },
          layout: "transpose",
          bias: false,
          mask,
          rotary: rotaryTables(builder.root.child("rotary_emb"), sequence, { headDim: shape.hidden / shape.heads, base: 10000 }),
        })
      : selfAttention(attention, x, { ...shape, projections: { fused: "c_attn" }, layout: "conv1d", bias: true, mask });
  builder.output(context, "context", DataType.FLOAT, ["batch", "sequence", shape.hidden]);
  return builder.finish();
}

function weightOf(model: Model, name: string): Float32Array {
  return model.graph.initializers.get(name)!.initializer!.data() as Float32Array;
}

/** Rotates one head vector at `position` as rotate_half does. */
function rotate(vector: number[], position: number, frequencies: Float32Array): number[] {
  const half = vector.length / 2;
  return vector.map((value, i) => {
    const angle = position * frequencies[i % half];
    const partner = i < half ? -vector[i + half] : vector[i - half];
    return value * Math.cos(angle) + partner * Math.sin(angle);
  });
}

/**
 * Causal masked attention in float64 from projected q [rows, heads·d] and
 * k, v [rows, kvHeads·d]. Query head h reads key/value head h / groups.
 */
function attentionReference(q: Float64Array, k: Float64Array, v: Float64Array, shape: Shape, frequencies?: Float32Array): Float64Array {
  const headDim = shape.hidden / shape.heads;
  const groups = shape.heads / shape.kvHeads;
  const out = new Float64Array(BATCH * SEQUENCE * shape.hidden);
  const headVector = (source: Float64Array, width: number, b: number, position: number, head: number): number[] => {
    const start = (b * SEQUENCE + position) * width + head * headDim;
    const vector = Array.from(source.subarray(start, start + headDim));
    return frequencies ? rotate(vector, position, frequencies) : vector;
  };
  for (let b = 0; b < BATCH; b++) {
    for (let head = 0; head < shape.heads; head++) {
      const kvHead = Math.floor(head / groups);
      for (let i = 0; i < SEQUENCE; i++) {
        const query = headVector(q, shape.heads * headDim, b, i, head);
        const scores = Array.from({ length: SEQUENCE }, (_, j) => {
          if (j > i || ATTENTION_MASK[b][j] === 0) return -Infinity;
          const key = headVector(k, shape.kvHeads * headDim, b, j, kvHead);
          return query.reduce((sum, value, d) => sum + value * key[d], 0) / Math.sqrt(headDim);
        });
        const probabilities = softmaxRow(scores);
        for (let d = 0; d < headDim; d++) {
          let sum = 0;
          for (let j = 0; j < SEQUENCE; j++) {
            const start = (b * SEQUENCE + j) * shape.kvHeads * headDim + kvHead * headDim;
            sum += probabilities[j] * v[start + d];
          }
          out[(b * SEQUENCE + i) * shape.hidden + head * headDim + d] = sum;
        }
      }
    }
  }
  return out;
}

async function runAttention(model: Model, x: Float32Array, hidden: number): Promise<Float32Array> {
  const session = await createSession(model);
  const outputs = await run(session, { x: floatTensor(x, [BATCH, SEQUENCE, hidden]), attention_mask: int64Tensor(ATTENTION_MASK) });
  expect(outputs.context.dims).toEqual([BATCH, SEQUENCE, hidden]);
  return outputs.context.data;
}

// Inputs of size ~50 with std-0.02 weights give attention scores of order 10,
// so the softmax is far from uniform and masking, scaling and head mapping matter.
const INPUT_SCALE = 50;
// Context values are of order 1, and float32 rounding keeps them within about 1e-5.
const TOLERANCE = 1e-4;

describe("selfAttention", () => {
  test("grouped-query attention with rotary matches the reference", async () => {
    const shape = { hidden: 16, heads: 4, kvHeads: 2 };
    const model = attentionModel(shape, "llama");
    const x = sampleInput(BATCH * SEQUENCE * shape.hidden, 13).map((value) => value * INPUT_SCALE);
    const rows = BATCH * SEQUENCE;
    const project = (name: string, width: number) => matmul(x, transposed(weightOf(model, name), width, shape.hidden), rows, shape.hidden, width);
    const q = project("attn.q_proj.weight", 16);
    const k = project("attn.k_proj.weight", 8);
    const v = project("attn.v_proj.weight", 8);

    const expected = attentionReference(q, k, v, shape, rotaryInverseFrequencies(4, 10000));
    expect(maxAbsDifference(await runAttention(model, x, shape.hidden), expected)).toBeLessThan(TOLERANCE);
  });

  test("fused c_attn attention matches the reference", async () => {
    const shape = { hidden: 8, heads: 2, kvHeads: 2 };
    const model = attentionModel(shape, "gpt2");
    const x = sampleInput(BATCH * SEQUENCE * shape.hidden, 17).map((value) => value * INPUT_SCALE);
    const fused = addRows(matmul(x, weightOf(model, "attn.c_attn.weight"), BATCH * SEQUENCE, 8, 24), weightOf(model, "attn.c_attn.bias"));
    const column = (offset: number) => Float64Array.from({ length: BATCH * SEQUENCE * 8 }, (_, i) => fused[Math.floor(i / 8) * 24 + offset + (i % 8)]);

    const expected = attentionReference(column(0), column(8), column(16), shape);
    expect(maxAbsDifference(await runAttention(model, x, shape.hidden), expected)).toBeLessThan(TOLERANCE);
  });

  test("grouped-query keys are repeated with Expand and Reshape", () => {
    const model = attentionModel({ hidden: 16, heads: 4, kvHeads: 2 }, "llama");
    const expands = model.graph.nodes.filter((node) => node.opType === "Expand");
    expect(expands.map((node) => node.name)).toEqual(["/attn/Expand", "/attn/Expand_1"]);
    for (const node of expands) {
      expect(node.inputs[0]?.producer?.opType).toBe("Unsqueeze");
      expect(node.outputs[0].uses[0].node.opType).toBe("Reshape");
    }
    expect(model.graph.initializers.get("attn.k_proj.weight")?.initializer?.dims).toEqual([8, 16]);
  });

  test("fused projection is split in three", () => {
    const model = attentionModel({ hidden: 8, heads: 2, kvHeads: 2 }, "gpt2");
    const split = model.graph.nodes.find((node) => node.opType === "Split")!;
    expect(split.name).toBe("/attn/Split");
    expect(split.inputs[0]?.producer?.name).toBe("/attn/c_attn/Add");
    expect(split.inputs[1]?.producer?.getTensor("value")?.numbers()).toEqual([8, 8, 8]);
    expect(split.outputs.length).toBe(3);
    expect(model.graph.nodes.some((node) => node.opType === "Expand")).toBe(false);
  });

  test("invalid head counts are rejected", () => {
    expect(() => attentionModel({ hidden: 16, heads: 4, kvHeads: 3 }, "llama")).toThrow(RangeError);
    expect(() => attentionModel({ hidden: 10, heads: 4, kvHeads: 4 }, "gpt2")).toThrow(RangeError);
  });
});
