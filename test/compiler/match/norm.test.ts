import type { Value } from "../../../compiler/ir/value";
import { isMatch } from "../../../compiler/match/linear";
import type { MatchedModule } from "../../../compiler/match/module";
import { matchDecomposedNorm, matchFusedNorm } from "../../../compiler/match/norm";
import { TinyGraph } from "./tiny-graphs";

function expectNorm(result: ReturnType<typeof matchDecomposedNorm>): MatchedModule {
  if (!isMatch(result)) throw new Error(`expected a norm, got: ${result.reason}`);
  return result;
}

/** Builds `ReduceMean(Pow(y, 2)) + eps` and its Sqrt, where y is x centred (LayerNorm) or x (RMSNorm). */
function rstdCore(t: TinyGraph, x: Value, centred: boolean): { y: Value; sqrt: Value } {
  const y = centred ? t.op("Sub", [x, t.op("ReduceMean", [x])]) : x;
  const variance = t.op("ReduceMean", [t.op("Pow", [y, t.weight("two", [])])]);
  const sqrt = t.op("Sqrt", [t.op("Add", [variance, t.weight("eps", [])])]);
  return { y, sqrt };
}

describe("matchFusedNorm", () => {
  test("LayerNormalization scale and bias", () => {
    const t = new TinyGraph();
    const node = t.node("LayerNormalization", [t.input("x", [2, 4]), t.weight("ln.weight", [4]), t.weight("ln.bias", [4])]);
    const norm = expectNorm(matchFusedNorm(node));
    expect(norm.weight!.value.name).toBe("ln.weight");
    expect(norm.bias!.value.name).toBe("ln.bias");
  });

  test("SkipLayerNormalization gamma and beta", () => {
    const t = new TinyGraph();
    const node = t.node("SkipLayerNormalization", [t.input("x", [2, 4]), t.input("skip", [2, 4]), t.weight("gamma", [4]), t.weight("beta", [4]), t.weight("folded_bias", [4])], { domain: "com.microsoft" });
    const norm = expectNorm(matchFusedNorm(node));
    expect([norm.weight!.value.name, norm.bias!.value.name]).toEqual(["gamma", "beta"]);
  });

  test("SimplifiedLayerNormalization has no bias", () => {
    const t = new TinyGraph();
    const node = t.node("SkipSimplifiedLayerNormalization", [t.input("x", [2, 4]), t.input("skip", [2, 4]), t.weight("gamma", [4])], { domain: "com.microsoft" });
    const norm = expectNorm(matchFusedNorm(node));
    expect(norm.form).toBe("SkipSimplifiedLayerNormalization");
    expect(norm.bias).toBeUndefined();
  });

  test("other ops are not norms", () => {
    const t = new TinyGraph();
    expect(isMatch(matchFusedNorm(t.node("Relu", [t.input("x", [2, 4])])))).toBe(false);
  });
});

describe("matchDecomposedNorm", () => {
  test("LayerNorm with Div, Mul weight, Add bias", () => {
    const t = new TinyGraph();
    const x = t.input("x", [2, 4]);
    const { y, sqrt } = rstdCore(t, x, true);
    const scaled = t.op("Mul", [t.op("Div", [y, sqrt]), t.weight("ln.weight", [4])]);
    const out = t.op("Add", [scaled, t.weight("ln.bias", [4])]);
    const norm = expectNorm(matchDecomposedNorm(sqrt.producer!));
    expect(norm.form).toBe("decomposed LayerNorm");
    expect(norm.weight!.value.name).toBe("ln.weight");
    expect(norm.bias!.value.name).toBe("ln.bias");
    expect(norm.input).toBe(x);
    expect(norm.output).toBe(out);
  });

  test("RMSNorm with Reciprocal and Mul", () => {
    const t = new TinyGraph();
    const x = t.input("x", [2, 4]);
    const { sqrt } = rstdCore(t, x, false);
    const normalised = t.op("Mul", [x, t.op("Reciprocal", [sqrt])]);
    const out = t.op("Mul", [normalised, t.weight("rms.weight", [4])]);
    const norm = expectNorm(matchDecomposedNorm(sqrt.producer!));
    expect(norm.form).toBe("decomposed RMSNorm");
    expect(norm.weight!.value.name).toBe("rms.weight");
    expect(norm.bias).toBeUndefined();
    expect(norm.output).toBe(out);
  });

  test("RMSNorm does not take a following Add as bias", () => {
    const t = new TinyGraph();
    const x = t.input("x", [2, 4]);
    const { sqrt } = rstdCore(t, x, false);
    const scaled = t.op("Mul", [t.op("Div", [x, sqrt]), t.weight("rms.weight", [4])]);
    t.op("Add", [scaled, t.weight("unrelated", [4])]);
    expect(expectNorm(matchDecomposedNorm(sqrt.producer!)).bias).toBeUndefined();
  });

  test("Sqrt of a head size is not a norm", () => {
    const t = new TinyGraph();
    const sqrt = t.node("Sqrt", [t.input("d", [])]);
    expect(isMatch(matchDecomposedNorm(sqrt))).toBe(false);
  });

  test("Sqrt of a mean without a square is not a norm", () => {
    const t = new TinyGraph();
    const mean = t.op("ReduceMean", [t.input("x", [2, 4])]);
    const sqrt = t.node("Sqrt", [t.op("Add", [mean, t.weight("eps", [])])]);
    expect(isMatch(matchDecomposedNorm(sqrt))).toBe(false);
  });
});
