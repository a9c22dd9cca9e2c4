import { DataType, attr, infer, input, newModel, op, out, typeOf } from "../build";

describe("normalization rules", () => {
  it("gives LayerNormalization its Mean and InvStdDev outputs", () => {
    const model = newModel({ "": 17 });
    const x = input(model.graph, "x", DataType.FLOAT16, ["batch", "sequence", 64]);
    const scale = input(model.graph, "scale", DataType.FLOAT16, [64]);
    const last = op(model.graph, "LayerNormalization", [x, scale], { outputs: 3 });
    const fromOne = op(model.graph, "LayerNormalization", [x, scale], { outputs: 3, attributes: [attr.int("axis", 1), attr.int("stash_type", DataType.DOUBLE)] });
    infer(model);
    expect(last.outputs.map(typeOf)).toEqual(["FLOAT16[batch,sequence,64]", "FLOAT[batch,sequence,1]", "FLOAT[batch,sequence,1]"]);
    expect(fromOne.outputs.map(typeOf)).toEqual(["FLOAT16[batch,sequence,64]", "DOUBLE[batch,1,1]", "DOUBLE[batch,1,1]"]);
  });

  it("runs LayerNormalization below opset 17, as onnxruntime does", () => {
    const model = newModel({ "": 15 });
    const node = op(model.graph, "LayerNormalization", [input(model.graph, "x", DataType.FLOAT, ["n", 8]), input(model.graph, "scale", DataType.FLOAT, [8])]);
    const report = infer(model);
    expect(report.unsupported).toEqual([]);
    expect(typeOf(out(node))).toBe("FLOAT[n,8]");
  });

  it("shapes RMSNormalization and SimplifiedLayerNormalization", () => {
    const model = newModel({ "": 23 });
    const x = input(model.graph, "x", DataType.FLOAT16, ["batch", "sequence", 64]);
    const scale = input(model.graph, "scale", DataType.FLOAT16, [64]);
    const rms = op(model.graph, "RMSNormalization", [x, scale]);
    const simplified = op(model.graph, "SimplifiedLayerNormalization", [x, scale], { outputs: 2 });
    infer(model);
    expect(typeOf(out(rms))).toBe("FLOAT16[batch,sequence,64]");
    expect(simplified.outputs.map(typeOf)).toEqual(["FLOAT16[batch,sequence,64]", "FLOAT[batch,sequence,1]"]);
  });

  it("gives SkipLayerNormalization its sum output and float statistics", () => {
    const model = newModel({ "": 17, "com.microsoft": 1 });
    const x = input(model.graph, "x", DataType.FLOAT16, ["batch", "sequence", 32]);
    const skip = input(model.graph, "skip", DataType.FLOAT16, ["batch", "sequence", 32]);
    const gamma = input(model.graph, "gamma", DataType.FLOAT16, [32]);
    const node = op(model.graph, "SkipLayerNormalization", [x, skip, gamma], { outputs: 4, domain: "com.microsoft" });
    const report = infer(model);
    // mean and inv_std_var hold one float per row, as onnxruntime 1.31 returns them.
    expect(node.outputs.map(typeOf)).toEqual(["FLOAT16[batch,sequence,32]", "FLOAT[batch,sequence,1]", "FLOAT[batch,sequence,1]", "FLOAT16[batch,sequence,32]"]);
    expect(report.incomplete).toEqual([]);
  });

  it("shapes EmbedLayerNormalization outputs", () => {
    const model = newModel({ "": 11, "com.microsoft": 1 });
    const ids = input(model.graph, "ids", DataType.INT32, ["batch", "sequence"]);
    const words = input(model.graph, "words", DataType.FLOAT, [1000, 32]);
    const positions = input(model.graph, "positions", DataType.FLOAT, [512, 32]);
    const gamma = input(model.graph, "gamma", DataType.FLOAT, [32]);
    const beta = input(model.graph, "beta", DataType.FLOAT, [32]);
    const node = op(model.graph, "EmbedLayerNormalization", [ids, undefined, words, positions, undefined, gamma, beta], { outputs: 3, domain: "com.microsoft" });
    infer(model);
    expect(node.outputs.map(typeOf)).toEqual(["FLOAT[batch,sequence,32]", "INT32[batch]", "FLOAT[batch,sequence,32]"]);
  });
});
