import type { Value } from "../../../compiler/ir/value";
import { DataType } from "../../../compiler/onnx/dtype";
import { discoverModules, discoveryToJson } from "../../../compiler/match";
import { TinyGraph } from "./tiny-graphs";

const HIDDEN = 4;
const FFN = 6;

/** Builds RMSNorm as torch exports it, with an anonymous weight. */
function rmsNorm(t: TinyGraph, x: Value): Value {
  const variance = t.op("ReduceMean", [t.op("Pow", [x, t.weight("onnx::Pow", [])])]);
  const sqrt = t.op("Sqrt", [t.op("Add", [variance, t.weight("onnx::Add", [])])]);
  return t.op("Mul", [t.op("Div", [x, sqrt]), t.weight("onnx::Mul", [HIDDEN])]);
}

function linear(t: TinyGraph, x: Value, inFeatures: number, outFeatures: number): Value {
  return t.op("MatMul", [x, t.weight("onnx::MatMul", [inFeatures, outFeatures])]);
}

/** Builds one pre-norm LLaMA block with every name stripped: attention, then a SwiGLU MLP. */
function block(t: TinyGraph, x: Value): Value {
  const n1 = rmsNorm(t, x);
  const [q, k, v] = [0, 1, 2].map(() => linear(t, n1, HIDDEN, HIDDEN));
  const scores = t.op("MatMul", [q, t.op("Transpose", [k])]);
  const context = t.op("MatMul", [t.op("Softmax", [scores]), v]);
  const h = t.op("Add", [x, linear(t, context, HIDDEN, HIDDEN)]);
  const n2 = rmsNorm(t, h);
  const gate = linear(t, n2, HIDDEN, FFN);
  const up = linear(t, n2, HIDDEN, FFN);
  const activated = t.op("Mul", [gate, t.op("Sigmoid", [gate])]);
  return t.op("Add", [h, linear(t, t.op("Mul", [activated, up]), FFN, HIDDEN)]);
}

/** Builds a two-layer decoder with no module names. When `tied`, the head reads the token table through a Transpose. */
function unnamedDecoder(tied: boolean): TinyGraph {
  const t = new TinyGraph();
  const ids = t.input("input_ids", ["batch", "seq"], DataType.INT64);
  const table = t.weight("onnx::Gather", [10, HIDDEN]);
  let h = t.op("Gather", [table, ids]);
  h = block(t, h);
  h = block(t, h);
  const final = rmsNorm(t, h);
  const logits = tied ? t.op("MatMul", [final, t.op("Transpose", [table])]) : linear(t, final, HIDDEN, 10);
  t.output(logits);
  return t;
}

describe("discoverModules", () => {
  test("unnamed decoder named by structure", () => {
    const json = discoveryToJson(discoverModules(unnamedDecoder(false).model));
    expect(json.modules.map((module) => module.path)).toEqual([
      "embed.tokens",
      ...[0, 1].flatMap((layer) => ["attn_norm", "attn.q", "attn.k", "attn.v", "attn.o", "mlp_norm", "mlp.gate", "mlp.up", "mlp.down"].map((leaf) => `layers.${layer}.${leaf}`)),
      "norm",
      "head",
    ]);
    expect(json.unrecognised).toEqual([]);
    for (const module of json.modules) {
      if (module.role === "embed.tokens") continue;
      expect(module.roleFrom).toBe("structure");
    }
    expect(json.modules.filter((module) => module.layer !== null).every((module) => module.layerFrom === "structure")).toBe(true);
  });

  test("tied head shares the token table", () => {
    const json = discoveryToJson(discoverModules(unnamedDecoder(true).model));
    const head = json.modules.find((module) => module.role === "head")!;
    expect(head.tiedTo).toBe("embed.tokens");
    expect(head.layout).toBe("out_in");
    expect(head.weight).toBe(json.modules.find((module) => module.role === "embed.tokens")!.weight);
  });

  test("names win over structure", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", HIDDEN]);
    const up = t.op("MatMul", [x, t.weight("model.layers.1.mlp.experts.0.up_proj.weight", [HIDDEN, FFN])]);
    t.output(up);
    const [module] = discoverModules(t.model).modules;
    expect(module.path).toBe("layers.1.mlp.up");
    expect(module.layer).toBe(1);
    expect(module.roleFrom).toBe("graph");
    expect(module.layerFrom).toBe("graph");
    expect(module.originalName).toBe("model.layers.1.mlp.experts.0.up_proj.weight");
  });

  test("lone anonymous linear is unrecognised", () => {
    const t = new TinyGraph();
    const y = t.op("MatMul", [t.input("x", [2, HIDDEN]), t.weight("W", [HIDDEN, 3])], { name: "" });
    t.output(y);
    const discovery = discoverModules(t.model);
    expect(discovery.modules).toEqual([]);
    expect(discovery.unrecognised.map((entry) => entry.kind).sort()).toEqual(["initializer", "node"]);
  });

  test("repeated paths get a suffix", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", HIDDEN]);
    t.output(t.op("MatMul", [x, t.weight("a.lm_head.weight", [HIDDEN, 3])]));
    t.output(t.op("MatMul", [x, t.weight("b.lm_head.weight", [HIDDEN, 3])]));
    expect(discoverModules(t.model).modules.map((module) => module.path)).toEqual(["head", "head.1"]);
  });

  test("JSON form is plain and stable", () => {
    const first = discoveryToJson(discoverModules(unnamedDecoder(true).model));
    const second = discoveryToJson(discoverModules(unnamedDecoder(true).model));
    expect(JSON.stringify(first)).toBe(JSON.stringify(second));
    expect(JSON.parse(JSON.stringify(first))).toEqual(first);
  });
});
