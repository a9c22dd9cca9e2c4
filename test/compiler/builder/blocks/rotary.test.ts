import { applyRotary, rotaryInverseFrequencies, rotaryTables } from "../../../../compiler/builder/blocks/rotary";
import { dimension } from "../../../../compiler/builder/shape-ops";
import { blockModel, sampleInput } from "../block-model";
import { maxAbsDifference } from "../../../fixtures/run-model";

const HEADS = 2;
const SEQUENCE = 5;
const HEAD_DIM = 8;

/** Hugging Face's apply_rotary_pos_emb on one [heads, sequence, headDim] tensor, in float64. */
function rotaryReference(x: Float32Array, inverseFrequencies: Float32Array): Float64Array {
  const half = HEAD_DIM / 2;
  const out = new Float64Array(x.length);
  for (let head = 0; head < HEADS; head++) {
    for (let position = 0; position < SEQUENCE; position++) {
      const base = (head * SEQUENCE + position) * HEAD_DIM;
      for (let i = 0; i < half; i++) {
        const angle = position * inverseFrequencies[i];
        const [first, second] = [x[base + i], x[base + i + half]];
        out[base + i] = first * Math.cos(angle) - second * Math.sin(angle);
        out[base + i + half] = second * Math.cos(angle) + first * Math.sin(angle);
      }
    }
  }
  return out;
}

describe("rotary embeddings", () => {
  test("inverse frequencies follow base^(-2i/d)", () => {
    const frequencies = rotaryInverseFrequencies(16, 10000);
    expect(frequencies.length).toBe(8);
    frequencies.forEach((value, i) => {
      expect(Math.abs(value - Math.pow(10000, (-2 * i) / 16))).toBeLessThanOrEqual(1e-7 * value);
    });
    expect(frequencies[0]).toBe(1);
  });

  test("odd head dimensions are rejected", () => {
    expect(() => rotaryInverseFrequencies(7, 10000)).toThrow(RangeError);
  });

  test("rotation matches rotate_half", async () => {
    const block = blockModel(4, (scope, x) => {
      const tables = rotaryTables(scope.child("rotary_emb"), dimension(scope, x, 2), { headDim: HEAD_DIM, base: 10000 });
      return applyRotary(scope, x, tables);
    });
    const x = sampleInput(HEADS * SEQUENCE * HEAD_DIM, 5);
    const output = await block.run(x, [1, HEADS, SEQUENCE, HEAD_DIM]);
    // Angles reach 4 rad, where float32 Cos and Sin are accurate to about 1e-6.
    expect(maxAbsDifference(output.data, rotaryReference(x, rotaryInverseFrequencies(HEAD_DIM, 10000)))).toBeLessThan(5e-6);
  });

  test("tables live in the rotary_emb scope", () => {
    const { model } = blockModel(4, (scope, x) => rotaryTables(scope.child("model", "rotary_emb"), dimension(scope, x, 2), { headDim: HEAD_DIM, base: 10000 }).cos);
    const names = model.graph.nodes.map((node) => node.name);
    expect(names).toContain("/model/rotary_emb/Cos");
    expect(names).toContain("/model/rotary_emb/Sin");
  });
});
