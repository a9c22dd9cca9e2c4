import { attr } from "../../../compiler/ir/attribute";
import { DataType } from "../../../compiler/onnx/dtype";
import { matchEmbedding, matchFusedEmbeddings } from "../../../compiler/match/embedding";
import { isMatch } from "../../../compiler/match/linear";
import type { MatchedModule } from "../../../compiler/match/module";
import { TinyGraph } from "./tiny-graphs";

function expectEmbedding(result: ReturnType<typeof matchEmbedding>): MatchedModule {
  if (!isMatch(result)) throw new Error(`expected an embedding, got: ${result.reason}`);
  return result;
}

describe("matchEmbedding", () => {
  test("Gather of input_ids is a token table", () => {
    const t = new TinyGraph();
    const ids = t.input("input_ids", ["batch", "seq"], DataType.INT64);
    const embedding = expectEmbedding(matchEmbedding(t.node("Gather", [t.weight("table", [10, 4]), ids])));
    expect(embedding.structuralRole).toBe("embed.tokens");
    expect([embedding.inFeatures, embedding.outFeatures]).toEqual([10, 4]);
  });

  test("indices from Range are positions", () => {
    const t = new TinyGraph();
    const length = t.input("length", [], DataType.INT64);
    const positions = t.op("Range", [t.ints("start", [0]), length, t.ints("step", [1])]);
    const unsqueezed = t.op("Unsqueeze", [positions, t.ints("axes", [0])]);
    expect(expectEmbedding(matchEmbedding(t.node("Gather", [t.weight("wpe", [8, 4]), unsqueezed]))).structuralRole).toBe("embed.positions");
  });

  test("position_ids input gives positions", () => {
    const t = new TinyGraph();
    const ids = t.input("position_ids", ["batch", "seq"], DataType.INT64);
    expect(expectEmbedding(matchEmbedding(t.node("Gather", [t.weight("table", [8, 4]), ids]))).structuralRole).toBe("embed.positions");
  });

  test("unknown index source leaves the role open", () => {
    const t = new TinyGraph();
    const ids = t.input("x", ["batch"], DataType.INT64);
    const doubled = t.op("Neg", [ids]);
    expect(expectEmbedding(matchEmbedding(t.node("Gather", [t.weight("table", [8, 4]), doubled]))).structuralRole).toBeUndefined();
  });

  test("constant indices are not a lookup", () => {
    const t = new TinyGraph();
    expect(isMatch(matchEmbedding(t.node("Gather", [t.weight("table", [8, 4]), t.ints("index", [0])])))).toBe(false);
  });

  test("Gather along axis 1 is not a lookup", () => {
    const t = new TinyGraph();
    const ids = t.input("input_ids", ["batch"], DataType.INT64);
    expect(isMatch(matchEmbedding(t.node("Gather", [t.weight("table", [8, 4]), ids], { attributes: [attr.int("axis", 1)] })))).toBe(false);
  });

  test("Gather of an activation is not a lookup", () => {
    const t = new TinyGraph();
    const ids = t.input("input_ids", ["batch"], DataType.INT64);
    expect(isMatch(matchEmbedding(t.node("Gather", [t.input("hidden", [8, 4]), ids])))).toBe(false);
  });
});

describe("matchFusedEmbeddings", () => {
  test("EmbedLayerNormalization tables", () => {
    const t = new TinyGraph();
    const ids = t.input("input_ids", ["batch", "seq"], DataType.INT32);
    const node = t.node("EmbedLayerNormalization", [ids, undefined, t.weight("wte", [10, 4]), t.weight("wpe", [8, 4]), undefined, t.weight("gamma", [4]), t.weight("beta", [4])], { domain: "com.microsoft" });
    const found = matchFusedEmbeddings(node);
    expect(found.map((module) => [module.weight!.value.name, module.structuralRole])).toEqual([
      ["wte", "embed.tokens"],
      ["wpe", "embed.positions"],
    ]);
  });
});
