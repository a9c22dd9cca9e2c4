import { onnx } from "onnx-proto";
import { ModelProtoType } from "../../../compiler/onnx/schema";
import { ModelProto } from "../../../compiler/onnx/proto";

/** Builds, with onnx-proto's own classes, a model that uses every ONNX 1.10 message and most fields. */
function legacyModel(): onnx.IModelProto {
  const tensor: onnx.ITensorProto = {
    name: "w",
    dataType: onnx.TensorProto.DataType.FLOAT,
    dims: [2, 3],
    floatData: [1, 2, 3, 4, 5, 6],
    docString: "weight",
  };
  const shape: onnx.ITensorShapeProto = { dim: [{ dimParam: "batch" }, { dimValue: 3 }] };
  const branch: onnx.IGraphProto = {
    name: "then",
    node: [{ input: ["x"], output: ["y"], opType: "Identity", name: "id" }],
    output: [{ name: "y", type: { tensorType: { elemType: 1, shape } } }],
  };
  return {
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }, { domain: "com.microsoft", version: 1 }],
    producerName: "peftc-test",
    producerVersion: "1",
    domain: "ai.peftc",
    modelVersion: 3,
    docString: "model doc",
    metadataProps: [{ key: "k", value: "v" }],
    graph: {
      name: "g",
      docString: "graph doc",
      input: [{ name: "x", type: { tensorType: { elemType: 1, shape } }, docString: "input doc" }],
      output: [{ name: "z", type: { tensorType: { elemType: 1, shape } } }],
      initializer: [tensor],
      valueInfo: [{ name: "y", type: { tensorType: { elemType: 1, shape } } }],
      quantizationAnnotation: [{ tensorName: "w", quantParameterTensorNames: [{ key: "SCALE_TENSOR", value: "s" }] }],
      node: [
        {
          input: ["x", "w"],
          output: ["z"],
          name: "mm",
          opType: "Gemm",
          domain: "",
          docString: "node doc",
          attribute: [
            { name: "alpha", type: onnx.AttributeProto.AttributeType.FLOAT, f: 0.5 },
            { name: "transB", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
            { name: "tag", type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode("hi") },
            { name: "axes", type: onnx.AttributeProto.AttributeType.INTS, ints: [0, -1] },
            { name: "scales", type: onnx.AttributeProto.AttributeType.FLOATS, floats: [0.25, 4] },
            { name: "value", type: onnx.AttributeProto.AttributeType.TENSOR, t: tensor },
            { name: "then_branch", type: onnx.AttributeProto.AttributeType.GRAPH, g: branch },
          ],
        },
      ],
    },
    trainingInfo: [{ initialization: branch, initializationBinding: [{ key: "a", value: "b" }] }],
    functions: [{ name: "F", domain: "local", input: ["a"], output: ["b"], attribute: ["alpha"], node: [{ input: ["a"], output: ["b"], opType: "Relu" }], opsetImport: [{ domain: "", version: 17 }], docString: "fn" }],
  };
}

function legacyObject(bytes: Uint8Array): unknown {
  return onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes), { longs: String, bytes: String, defaults: true });
}

describe("ONNX schema", () => {
  it("reads everything onnx-proto (ONNX 1.10) writes", () => {
    const legacyBytes = onnx.ModelProto.encode(onnx.ModelProto.create(legacyModel())).finish();
    const ours = ModelProtoType.decode(legacyBytes);
    const reencoded = ModelProtoType.encode(ours).finish();
    expect(legacyObject(reencoded)).toEqual(legacyObject(legacyBytes));
  });

  it("keeps IR 9-11 fields that onnx-proto drops", () => {
    const model: ModelProto = {
      irVersion: 10,
      opsetImport: [{ domain: "", version: 21 }],
      graph: {
        name: "g",
        metadataProps: [{ key: "graph-key", value: "1" }],
        node: [
          {
            input: ["x"],
            output: ["y"],
            opType: "F",
            domain: "local",
            overload: "v2",
            metadataProps: [{ key: "node-key", value: "2" }],
            deviceConfigurations: [{ configurationId: "mesh", pipelineStage: 1 }],
          },
        ],
        input: [{ name: "x", metadataProps: [{ key: "value-key", value: "3" }] }],
        output: [{ name: "y" }],
      },
      functions: [
        {
          name: "F",
          domain: "local",
          overload: "v2",
          input: ["a"],
          output: ["b"],
          attributeProto: [{ name: "alpha", type: 1, f: 2 }],
          valueInfo: [{ name: "b" }],
          metadataProps: [{ key: "function-key", value: "4" }],
          node: [{ input: ["a"], output: ["b"], opType: "Relu" }],
        },
      ],
      configuration: [{ name: "mesh", numDevices: 2, device: ["gpu0", "gpu1"] }],
    };
    const bytes = ModelProtoType.encode(model as never).finish();
    const back = ModelProtoType.toObject(ModelProtoType.decode(bytes), { longs: Number }) as ModelProto;

    expect(back.graph?.metadataProps).toEqual([{ key: "graph-key", value: "1" }]);
    expect(back.graph?.node?.[0].overload).toBe("v2");
    expect(back.graph?.node?.[0].metadataProps).toEqual([{ key: "node-key", value: "2" }]);
    expect(back.graph?.node?.[0].deviceConfigurations).toEqual([{ configurationId: "mesh", pipelineStage: 1 }]);
    expect(back.graph?.input?.[0].metadataProps).toEqual([{ key: "value-key", value: "3" }]);
    expect(back.functions?.[0].overload).toBe("v2");
    expect(back.functions?.[0].attributeProto?.[0]).toEqual({ name: "alpha", type: 1, f: 2 });
    expect(back.functions?.[0].valueInfo).toEqual([{ name: "b" }]);
    expect(back.configuration).toEqual([{ name: "mesh", numDevices: 2, device: ["gpu0", "gpu1"] }]);

    // The bundled ONNX 1.10 decoder loses them, which is why peftc carries its own schema.
    const legacy = onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes)) as { graph: { node: Record<string, unknown>[] } };
    expect(legacy.graph.node[0].overload).toBeUndefined();
  });
});
