import { DataType, attr, infer, input, int64s, newModel, op, typeOf } from "../build";

describe("ONNX Attention (opset 23)", () => {
  it("shapes 4-D inputs with a cache", () => {
    const model = newModel({ "": 23 });
    const g = model.graph;
    const q = input(g, "q", DataType.FLOAT, ["batch", 8, "sequence", 16]);
    const k = input(g, "k", DataType.FLOAT, ["batch", 2, "sequence", 16]);
    const v = input(g, "v", DataType.FLOAT, ["batch", 2, "sequence", 32]);
    const pastKey = input(g, "past_key", DataType.FLOAT, ["batch", 2, "past", 16]);
    const pastValue = input(g, "past_value", DataType.FLOAT, ["batch", 2, "past", 32]);
    const node = op(g, "Attention", [q, k, v, undefined, pastKey, pastValue], { outputs: 4 });
    infer(model);
    expect(node.outputs.map(typeOf)).toEqual([
      "FLOAT[batch,8,sequence,32]",
      "FLOAT[batch,2,past+sequence,16]",
      "FLOAT[batch,2,past+sequence,32]",
      "FLOAT[batch,8,sequence,past+sequence]",
    ]);
  });

  it("shapes 3-D inputs with head counts", () => {
    const model = newModel({ "": 23 });
    const g = model.graph;
    const q = input(g, "q", DataType.FLOAT, ["batch", 4, 24]);
    const kv = input(g, "kv", DataType.FLOAT, ["batch", 6, 24]);
    const node = op(g, "Attention", [q, kv, kv], { outputs: 3, attributes: [attr.int("q_num_heads", 3), attr.int("kv_num_heads", 3)] });
    infer(model);
    expect(node.outputs.map(typeOf)).toEqual(["FLOAT[batch,4,24]", "FLOAT[batch,3,6,8]", "FLOAT[batch,3,6,8]"]);
  });

  it("requires head counts for 3-D inputs", () => {
    const model = newModel({ "": 23 });
    const q = input(model.graph, "q", DataType.FLOAT, [2, 4, 24]);
    op(model.graph, "Attention", [q, q, q], { name: "no_heads" });
    const report = infer(model);
    expect(report.failures[0]?.message).toMatch(/no_heads.*"kv_num_heads"/);
  });
});

describe("onnxruntime attention operators", () => {
  const microsoft = { domain: "com.microsoft" };

  it("shapes Attention with a packed past", () => {
    const model = newModel({ "": 11, "com.microsoft": 1 });
    const g = model.graph;
    const x = input(g, "x", DataType.FLOAT, ["batch", "sequence", 32]);
    const weights = input(g, "weights", DataType.FLOAT, [32, 96]);
    const bias = input(g, "bias", DataType.FLOAT, [96]);
    const mask = input(g, "mask", DataType.INT32, ["batch", "total"]);
    const past = input(g, "past", DataType.FLOAT, [2, "batch", 4, "past", 8]);
    const node = op(g, "Attention", [x, weights, bias, mask, past], { ...microsoft, outputs: 2, attributes: [attr.int("num_heads", 4)] });
    infer(model);
    expect(node.outputs.map(typeOf)).toEqual(["FLOAT[batch,sequence,32]", "FLOAT[2,batch,4,past+sequence,8]"]);
  });

  it("uses qkv_hidden_sizes for Attention's output width", () => {
    const model = newModel({ "": 11, "com.microsoft": 1 });
    const g = model.graph;
    const x = input(g, "x", DataType.FLOAT, [2, 5, 16]);
    const node = op(g, "Attention", [x, input(g, "w", DataType.FLOAT, [16, 40]), input(g, "b", DataType.FLOAT, [40])], {
      ...microsoft,
      attributes: [attr.int("num_heads", 2), attr.ints("qkv_hidden_sizes", [16, 16, 8])],
    });
    infer(model);
    expect(typeOf(node.outputs[0])).toBe("FLOAT[2,5,8]");
  });

  it("shapes MultiHeadAttention for self and cross attention", () => {
    const model = newModel({ "": 17, "com.microsoft": 1 });
    const g = model.graph;
    const q = input(g, "q", DataType.FLOAT16, ["batch", 1, 10]);
    const pastKey = input(g, "past_key", DataType.FLOAT16, ["batch", 2, "past", 5]);
    const self = op(g, "MultiHeadAttention", [q, q, q, undefined, undefined, undefined, pastKey, pastKey], { ...microsoft, outputs: 3, attributes: [attr.int("num_heads", 2)] });
    const cross = op(g, "MultiHeadAttention", [q, pastKey, pastKey], { ...microsoft, attributes: [attr.int("num_heads", 2)] });
    infer(model);
    expect(self.outputs.map(typeOf)).toEqual(["FLOAT16[batch,1,10]", "FLOAT16[batch,2,past+1,5]", "FLOAT16[batch,2,past+1,5]"]);
    expect(typeOf(cross.outputs[0])).toBe("FLOAT16[batch,1,10]");
  });

  it("shapes GroupQueryAttention's present from total_sequence_length", () => {
    const model = newModel({ "": 21, "com.microsoft": 1 });
    const g = model.graph;
    const q = input(g, "q", DataType.FLOAT16, ["batch", "sequence", 64]);
    const kv = input(g, "kv", DataType.FLOAT16, ["batch", "sequence", 32]);
    const past = input(g, "past", DataType.FLOAT16, ["batch", 2, "past", 16]);
    const mask = input(g, "mask", DataType.INT64, ["batch", "total"]);
    const total = op(g, "Cast", [op(g, "Gather", [op(g, "Shape", [mask]).outputs[0], int64s(g, "one", [1], [])]).outputs[0]], {
      attributes: [attr.int("to", DataType.INT32)],
    });
    const seqlens = input(g, "seqlens", DataType.INT32, ["batch"]);
    const node = op(g, "GroupQueryAttention", [q, kv, kv, past, past, seqlens, total.outputs[0]], {
      ...microsoft,
      outputs: 3,
      attributes: [attr.int("num_heads", 4), attr.int("kv_num_heads", 2)],
    });
    infer(model);
    // The cache grows to total_sequence_length unless the past buffer is longer (shared buffers).
    expect(node.outputs.map(typeOf)).toEqual(["FLOAT16[batch,sequence,64]", "FLOAT16[batch,2,max(past,total),16]", "FLOAT16[batch,2,max(past,total),16]"]);
  });

  it("negative total_sequence_length reported", () => {
    const model = newModel({ "": 21, "com.microsoft": 1 });
    const g = model.graph;
    const q = input(g, "q", DataType.FLOAT16, ["batch", "sequence", 64]);
    const kv = input(g, "kv", DataType.FLOAT16, ["batch", "sequence", 32]);
    const seqlens = input(g, "seqlens", DataType.INT32, ["batch"]);
    const total = int64s(g, "total", [-3], []);
    op(g, "GroupQueryAttention", [q, kv, kv, undefined, undefined, seqlens, total], {
      ...microsoft,
      outputs: 3,
      name: "gqa",
      attributes: [attr.int("num_heads", 4), attr.int("kv_num_heads", 2)],
    });
    const report = infer(model);
    expect(report.failures.map((failure) => failure.node)).toEqual(["gqa"]);
  });
});
