import { DataType, attr, infer, input, newModel, op, out, typeOf } from "../build";

function matmul(left: (number | string)[], right: (number | string)[], opType = "MatMul", attributes = [] as ReturnType<typeof attr.int>[]): string {
  const model = newModel({ "": 18, "com.microsoft": 1 });
  const a = input(model.graph, "a", DataType.FLOAT, left);
  const b = input(model.graph, "b", DataType.FLOAT, right);
  const node = op(model.graph, opType, [a, b], { attributes, domain: opType === "FusedMatMul" ? "com.microsoft" : undefined });
  infer(model);
  return typeOf(out(node));
}

describe("matrix product rules", () => {
  it.each<[(number | string)[], (number | string)[], string]>([
    [["batch", "sequence", 64], [64, 256], "FLOAT[batch,sequence,256]"],
    [["batch", 4, "sequence", 16], ["batch", 4, 16, "total"], "FLOAT[batch,4,sequence,total]"],
    [[8], [8, 3], "FLOAT[3]"],
    [["n", 8], [8], "FLOAT[n]"],
    [[8], [8], "FLOAT[]"],
    [[1, "heads", 5, 8], ["batch", 1, 8, 7], "FLOAT[batch,heads,5,7]"],
  ])("MatMul of %j and %j gives %s", (left, right, expected) => {
    expect(matmul(left, right)).toBe(expected);
  });

  it("fails on different inner sizes", () => {
    const model = newModel();
    op(model.graph, "MatMul", [input(model.graph, "a", DataType.FLOAT, [2, 3]), input(model.graph, "b", DataType.FLOAT, [4, 5])], { name: "mm" });
    const report = infer(model);
    expect(report.failures[0]).toMatchObject({ node: "mm", opType: "MatMul", value: "mm_output_0" });
    expect(report.failures[0]?.message).toMatch(/"mm" \(MatMul\) computing "mm_output_0": inner dimensions differ/);
  });

  it("applies Gemm's transposes", () => {
    expect(matmul(["rows", 64], [256, 64], "Gemm", [attr.int("transB", 1)])).toBe("FLOAT[rows,256]");
    expect(matmul([64, "rows"], [64, 256], "Gemm", [attr.int("transA", 1)])).toBe("FLOAT[rows,256]");
  });

  it("applies FusedMatMul's transposes", () => {
    expect(matmul(["batch", 2, "sequence", 8], ["batch", 2, "sequence", 8], "FusedMatMul", [attr.int("transB", 1)])).toBe("FLOAT[batch,2,sequence,sequence]");
    expect(matmul([1, 1, 1024], [1, 4, 1], "FusedMatMul", [attr.int("transA", 1), attr.int("transB", 1)])).toBe("FLOAT[1,1024,4]");
  });

  it("moves FusedMatMul's batch axis with transBatch", () => {
    // transBatchA moves the first axis of A to just before its last: [5, 2, 3, 7] is read as [2, 3, 5, 7].
    expect(matmul([5, 2, 3, 7], [2, 3, 7, 4], "FusedMatMul", [attr.int("transBatchA", 1)])).toBe("FLOAT[2,3,5,4]");
  });

  it("shapes MatMulNBits from its N attribute", () => {
    const model = newModel({ "": 21, "com.microsoft": 1 });
    const a = input(model.graph, "a", DataType.FLOAT16, ["batch", "sequence", 64]);
    const b = input(model.graph, "b", DataType.UINT8, [256, 2, 16]);
    const scales = input(model.graph, "scales", DataType.FLOAT16, [256, 2]);
    const node = op(model.graph, "MatMulNBits", [a, b, scales], {
      domain: "com.microsoft",
      attributes: [attr.int("K", 64), attr.int("N", 256), attr.int("bits", 4), attr.int("block_size", 32)],
    });
    infer(model);
    expect(typeOf(out(node))).toBe("FLOAT16[batch,sequence,256]");
  });

  it("returns int32 for MatMulInteger", () => {
    const model = newModel();
    const a = input(model.graph, "a", DataType.UINT8, ["n", 16]);
    const b = input(model.graph, "b", DataType.INT8, [16, 4]);
    const node = op(model.graph, "MatMulInteger", [a, b]);
    infer(model);
    expect(typeOf(out(node))).toBe("INT32[n,4]");
  });
});
