import { ModelBuilder } from "../../../compiler/builder/model-builder";
import { add, matMul } from "../../../compiler/builder/ops";
import { init } from "../../../compiler/builder/weights";
import { DataType } from "../../../compiler/onnx/dtype";
import { PeftcError, isPeftcError } from "../../../compiler/errors";

function newBuilder(opset = 17): ModelBuilder {
  return new ModelBuilder({ opset });
}

describe("ModelBuilder naming", () => {
  test("nodes carry torch.onnx scope names", () => {
    const builder = newBuilder();
    const x = builder.input("x", DataType.FLOAT, ["batch", 4]);
    const qProj = builder.root.child("model", "layers.0", "self_attn", "q_proj");
    const first = qProj.node("MatMul", [x, x]);
    const second = qProj.node("MatMul", [x, x]);
    const top = builder.root.node("Shape", [x]);

    expect(first.name).toBe("/model/layers.0/self_attn/q_proj/MatMul");
    expect(second.name).toBe("/model/layers.0/self_attn/q_proj/MatMul_1");
    expect(top.name).toBe("/Shape");
  });

  test("node outputs are named after the node", () => {
    const builder = newBuilder();
    const x = builder.input("x", DataType.FLOAT, [2]);
    const attention = builder.root.child("h.1", "attn");
    expect(add(attention, x, x).name).toBe("/h.1/attn/Add_output_0");
    expect(add(attention, x, x).name).toBe("/h.1/attn/Add_1_output_0");
  });

  test("parameters take the dotted module path", () => {
    const builder = newBuilder();
    const weight = builder.root.child("transformer", "h.0", "attn", "c_attn").parameter("weight", [4, 12], init.zeros());
    expect(weight.name).toBe("transformer.h.0.attn.c_attn.weight");
    expect(weight.initializer?.dims).toEqual([4, 12]);
    expect(builder.root.parameterName("lm_head")).toBe("lm_head");
  });

  test("duplicate parameter names are rejected", () => {
    const builder = newBuilder();
    const scope = builder.root.child("wte");
    scope.parameter("weight", [2], init.zeros());
    let caught: unknown;
    try {
      scope.parameter("weight", [2], init.zeros());
    } catch (error) {
      caught = error;
    }
    expect(isPeftcError(caught)).toBe(true);
    expect((caught as PeftcError).code).toBe("E_IR_INVARIANT");
  });

  test("anonymous names count up", () => {
    const builder = newBuilder();
    expect(builder.anonymousName("onnx::MatMul")).toBe("onnx::MatMul_1");
    expect(builder.anonymousName("onnx::MatMul")).toBe("onnx::MatMul_2");
  });

  test("module names with a slash are rejected", () => {
    expect(() => newBuilder().root.child("a/b")).toThrow(RangeError);
    expect(() => newBuilder().root.child("")).toThrow(RangeError);
  });
});

describe("ModelBuilder model", () => {
  test("output renames the value and sets its type", () => {
    const builder = newBuilder();
    const x = builder.input("x", DataType.FLOAT, ["batch", 3]);
    const w = builder.root.child("proj").parameter("weight", [3, 5], init.normal(0.02));
    const y = builder.output(matMul(builder.root.child("proj"), x, w), "logits", DataType.FLOAT, ["batch", 5]);
    const model = builder.finish();

    expect(y.name).toBe("logits");
    expect(y.producer?.name).toBe("/proj/MatMul");
    expect(model.graph.outputs).toEqual([y]);
    expect(y.type).toEqual({ kind: "tensor", elemType: DataType.FLOAT, shape: ["batch", 5] });
  });

  test("opset sets imports and IR version", () => {
    const cases: [number, number][] = [[13, 8], [14, 8], [17, 8], [18, 8], [19, 9], [21, 10]];
    for (const [opset, irVersion] of cases) {
      const model = new ModelBuilder({ opset }).model;
      expect(model.opsetImports.get("")).toBe(opset);
      expect(model.irVersion).toBe(irVersion);
    }
  });

  test("unsupported opsets are rejected", () => {
    expect(() => new ModelBuilder({ opset: 12 })).toThrow(RangeError);
    expect(() => new ModelBuilder({ opset: 22 })).toThrow(RangeError);
    expect(() => new ModelBuilder({ opset: 17.5 })).toThrow(RangeError);
  });

  test("metadata defaults", () => {
    const model = newBuilder().model;
    expect(model.graph.name).toBe("main_graph");
    expect(model.producerName).toBe("peftc");
  });

  test("finish validates the graph", () => {
    const builder = newBuilder();
    const x = builder.input("x", DataType.FLOAT, [2]);
    const node = builder.root.node("Relu", [x]);
    // Reading a value of another model breaks the IR's scoping invariant.
    const stranger = newBuilder().input("y", DataType.FLOAT, [2]);
    node.setInput(0, stranger);
    builder.output(node.outputs[0], "out", DataType.FLOAT, [2]);
    expect(() => builder.finish()).toThrow(/defined in graph/);
  });
});

describe("ModelBuilder weights", () => {
  test("a parameter's values do not depend on build order", () => {
    const forward = newBuilder();
    const a1 = forward.root.parameter("a", [8], init.normal(1));
    const b1 = forward.root.parameter("b", [8], init.normal(1));
    const backward = newBuilder();
    const b2 = backward.root.parameter("b", [8], init.normal(1));
    const a2 = backward.root.parameter("a", [8], init.normal(1));

    expect(Array.from(a1.initializer!.data() as Float32Array)).toEqual(Array.from(a2.initializer!.data() as Float32Array));
    expect(Array.from(b1.initializer!.data() as Float32Array)).toEqual(Array.from(b2.initializer!.data() as Float32Array));
  });

  test("seed changes parameter values", () => {
    const values = (seed: number): number[] => {
      const builder = new ModelBuilder({ opset: 17, seed });
      return Array.from(builder.root.parameter("w", [8], init.normal(1)).initializer!.data() as Float32Array);
    };
    expect(values(0)).toEqual(values(0));
    expect(values(0)).not.toEqual(values(1));
  });

  test("inits fill as described", () => {
    const builder = newBuilder();
    const data = (name: string, weightInit: ReturnType<typeof init.zeros>): number[] =>
      Array.from(builder.root.parameter(name, [3], weightInit).initializer!.data() as Float32Array);
    expect(data("zeros", init.zeros())).toEqual([0, 0, 0]);
    expect(data("ones", init.ones())).toEqual([1, 1, 1]);
    expect(data("values", init.values(Float32Array.of(1, 2, 3)))).toEqual([1, 2, 3]);
    expect(() => data("short", init.values(Float32Array.of(1)))).toThrow(RangeError);
  });

  test("zeros mode shares one zero buffer", () => {
    const builder = new ModelBuilder({ opset: 17, weights: "zeros" });
    const small = builder.root.parameter("small", [4], init.normal(1)).initializer!.data() as Float32Array;
    const large = builder.root.parameter("large", [16], init.ones()).initializer!.data() as Float32Array;
    const later = builder.root.parameter("later", [8], init.normal(1)).initializer!.data() as Float32Array;

    expect(Array.from(large)).toEqual(new Array(16).fill(0));
    expect(later.buffer).toBe(large.buffer);
    expect(small.length).toBe(4);
    expect(later.length).toBe(8);
  });
});
