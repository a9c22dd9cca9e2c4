import { ShapeRuleRegistry, createDefaultRegistry } from "../../../../compiler/ir/infer";
import { isPeftcError } from "../../../../compiler/errors";

const noop = (): void => undefined;

describe("ShapeRuleRegistry", () => {
  it("rejects a second rule for the same op and version", () => {
    const registry = new ShapeRuleRegistry();
    registry.register({ opType: "Relu", since: 1, infer: noop });
    let error: unknown;
    try {
      registry.register({ opType: "Relu", domain: "ai.onnx", since: 1, infer: noop });
    } catch (caught) {
      error = caught;
    }
    expect(isPeftcError(error)).toBe(true);
    expect((error as { code?: string }).code).toBe("E_SHAPE_INFERENCE");
  });

  it("accepts rules for different versions and domains", () => {
    const registry = new ShapeRuleRegistry();
    registry.register({ opType: "Squeeze", since: 1, infer: noop });
    registry.register({ opType: "Squeeze", since: 13, infer: noop });
    registry.register({ opType: "Squeeze", domain: "com.example", since: 1, infer: noop });
    expect(registry.list()).toHaveLength(3);
  });

  it("resolves the rule whose version range holds the opset", () => {
    const registry = new ShapeRuleRegistry();
    const old = (): void => undefined;
    const current = (): void => undefined;
    registry.register({ opType: "Squeeze", since: 1, infer: old });
    registry.register({ opType: "Squeeze", since: 13, infer: current });
    expect(registry.resolve("", "Squeeze", 11)?.infer).toBe(old);
    expect(registry.resolve("ai.onnx", "Squeeze", 13)?.infer).toBe(current);
    expect(registry.resolve("", "Squeeze", 21)?.infer).toBe(current);
  });

  it("finds no rule below the first version", () => {
    const registry = new ShapeRuleRegistry();
    registry.register({ opType: "Gelu", since: 20, infer: noop });
    expect(registry.resolve("", "Gelu", 18)).toBeUndefined();
    expect(registry.resolve("com.microsoft", "Gelu", 1)).toBeUndefined();
  });
});

describe("default registry", () => {
  const registry = createDefaultRegistry();

  it.each([
    ["", 11, "Add Sub Mul Div Pow Sqrt Reciprocal Neg Exp Log Tanh Erf Sigmoid Relu Softmax Cos Sin Not And Or Equal Less Greater Where Min Max MatMul Gemm Cast Identity Dropout Constant ConstantOfShape Shape Size Gather Reshape Transpose Squeeze Unsqueeze Concat Split Slice Expand Range ReduceMean ReduceSum ReduceMax ReduceProd CumSum ScatterND If Loop Flatten Tile Pad Sum Mean Abs ArgMax TopK GatherElements LayerNormalization SimplifiedLayerNormalization"],
    ["", 17, "LessOrEqual Trilu LogSoftmax IsNaN Einsum CastLike Mod"],
    ["", 23, "Attention RotaryEmbedding RMSNormalization Gelu"],
    ["com.microsoft", 1, "Attention MultiHeadAttention GroupQueryAttention SkipLayerNormalization EmbedLayerNormalization SkipSimplifiedLayerNormalization FastGelu BiasGelu FusedMatMul RotaryEmbedding BeamSearch"],
  ])("covers domain %j at opset %i", (domain, opset, names) => {
    const missing = names.split(" ").filter((opType) => !registry.resolve(domain, opType, opset));
    expect(missing).toEqual([]);
  });
});

describe("first versions", () => {
  const registry = createDefaultRegistry();

  // Each operator with the opset that introduced it in the default domain.
  it.each([
    ["Trilu", 14], ["Mish", 18], ["HardSwish", 14], ["Celu", 12], ["ThresholdedRelu", 10], ["Mod", 10], ["IsInf", 10], ["Where", 9],
    ["Range", 11], ["CastLike", 15], ["Expand", 8], ["Einsum", 12], ["LessOrEqual", 12], ["BitwiseAnd", 18], ["Gelu", 20], ["Cast", 6],
  ])("%s starts at opset %i", (opType, since) => {
    expect(registry.resolve("", opType, since - 1)).toBeUndefined();
    expect(registry.resolve("", opType, since)).toBeDefined();
  });

  it("rejects opset 0", () => {
    const empty = new ShapeRuleRegistry();
    expect(() => empty.register({ opType: "Relu", since: 0, infer: noop })).toThrow(/not a positive integer/);
  });
});
