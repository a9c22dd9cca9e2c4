import { attr } from "../../../compiler/ir/attribute";
import { isMatch, matchLinear } from "../../../compiler/match/linear";
import type { MatchedModule } from "../../../compiler/match/module";
import { TinyGraph } from "./tiny-graphs";

function expectLinear(result: ReturnType<typeof matchLinear>): MatchedModule {
  if (!isMatch(result)) throw new Error(`expected a linear layer, got: ${result.reason}`);
  return result;
}

describe("matchLinear", () => {
  test("MatMul with [in, out] initializer", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", 4]);
    const matmul = t.node("MatMul", [x, t.weight("W", [4, 3])]);
    const linear = expectLinear(matchLinear(matmul));
    expect(linear.layout).toBe("in_out");
    expect(linear.inFeatures).toBe(4);
    expect(linear.outFeatures).toBe(3);
    expect(linear.weight!.value.name).toBe("W");
    expect(linear.bias).toBeUndefined();
    expect(linear.output).toBe(matmul.outputs[0]);
  });

  test("MatMul through Transpose is [out, in]", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", 4]);
    const transposed = t.op("Transpose", [t.weight("W", [3, 4])], { attributes: [attr.ints("perm", [1, 0])] });
    const linear = expectLinear(matchLinear(t.node("MatMul", [x, transposed])));
    expect(linear.layout).toBe("out_in");
    expect(linear.inFeatures).toBe(4);
    expect(linear.outFeatures).toBe(3);
    expect(linear.nodes.map((node) => node.opType)).toEqual(["Transpose", "MatMul"]);
  });

  test("bias Add after MatMul", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", 4]);
    const product = t.op("MatMul", [x, t.weight("W", [4, 3])]);
    const sum = t.op("Add", [t.weight("b", [3]), product]);
    const linear = expectLinear(matchLinear(product.producer!));
    expect(linear.bias!.value.name).toBe("b");
    expect(linear.output).toBe(sum);
  });

  test("Add of the wrong size is not a bias", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", 4]);
    const product = t.op("MatMul", [x, t.weight("W", [4, 3])]);
    t.op("Add", [product, t.weight("not_bias", [2, 3])]);
    const linear = expectLinear(matchLinear(product.producer!));
    expect(linear.bias).toBeUndefined();
    expect(linear.output).toBe(product);
  });

  test("shared product keeps its Add", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", 4]);
    const product = t.op("MatMul", [x, t.weight("W", [4, 3])]);
    t.op("Add", [product, t.weight("b", [3])]);
    t.output(product);
    expect(expectLinear(matchLinear(product.producer!)).bias).toBeUndefined();
  });

  test("Gemm transB=1 with bias", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", 4]);
    const gemm = t.node("Gemm", [x, t.weight("W", [3, 4]), t.weight("b", [3])], { attributes: [attr.int("transB", 1)] });
    const linear = expectLinear(matchLinear(gemm));
    expect(linear.layout).toBe("out_in");
    expect([linear.inFeatures, linear.outFeatures]).toEqual([4, 3]);
    expect(linear.bias!.value.name).toBe("b");
  });

  test("Gemm in Reshape wrapping, GPT-2 Conv1D", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", "seq", 4]);
    const flat = t.op("Reshape", [x, t.ints("to_2d", [-1, 4])]);
    const gemm = t.node("Gemm", [flat, t.weight("W", [4, 12]), t.weight("b", [12])]);
    const back = t.op("Reshape", [gemm.outputs[0], t.ints("to_3d", [1, -1, 12])]);
    const linear = expectLinear(matchLinear(gemm));
    expect(linear.layout).toBe("in_out");
    expect(linear.input).toBe(x);
    expect(linear.output).toBe(back);
  });

  test("TF Tensordot: Reshape, MatMul, Reshape, Add", () => {
    const t = new TinyGraph();
    const x = t.input("x", ["batch", 7, 8]);
    const flat = t.op("Reshape", [x, t.ints("to_2d", [-1, 8])]);
    const product = t.op("MatMul", [flat, t.weight("W", [8, 32])]);
    const back = t.op("Reshape", [product, t.ints("to_3d", [-1, 7, 32])]);
    const sum = t.op("Add", [back, t.weight("b", [32])]);
    const linear = expectLinear(matchLinear(product.producer!));
    expect(linear.bias!.value.name).toBe("b");
    expect(linear.output).toBe(sum);
    expect(linear.input).toBe(x);
  });

  test("MatMul of two activations is not linear", () => {
    const t = new TinyGraph();
    const result = matchLinear(t.node("MatMul", [t.input("q", [2, 4]), t.input("k", [4, 2])]));
    expect(isMatch(result)).toBe(false);
  });

  test("Gemm with non-constant weight is not linear", () => {
    const t = new TinyGraph();
    const result = matchLinear(t.node("Gemm", [t.input("x", [2, 4]), t.input("W", [4, 3])]));
    expect(isMatch(result)).toBe(false);
  });

  test("input-overridden initializer is no weight", () => {
    const t = new TinyGraph();
    const weight = t.weight("W", [4, 3]);
    t.graph.inputs.push(weight);
    expect(isMatch(matchLinear(t.node("MatMul", [t.input("x", [2, 4]), weight])))).toBe(false);
  });

  test("3-D constant operand is not a weight", () => {
    const t = new TinyGraph();
    expect(isMatch(matchLinear(t.node("MatMul", [t.input("x", [2, 4]), t.weight("W", [1, 4, 3])])))).toBe(false);
  });

  test("constant times constant is not linear", () => {
    const t = new TinyGraph();
    expect(isMatch(matchLinear(t.node("MatMul", [t.weight("A", [2, 4]), t.weight("W", [4, 3])])))).toBe(false);
  });

  test("Transpose with a non-swapping perm is rejected", () => {
    const t = new TinyGraph();
    const odd = t.op("Transpose", [t.weight("W", [4, 3])], { attributes: [attr.ints("perm", [0, 1])] });
    expect(isMatch(matchLinear(t.node("MatMul", [t.input("x", [2, 4]), odd])))).toBe(false);
  });
});
