import { ExternalDataSink, tensorToProto } from "../onnx/model-file";
import {
  AttributeProto,
  FunctionProto,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetIdProto,
  TensorShapeDimensionProto,
  TypeProto,
  ValueInfoProto,
  bigIntToInt64,
} from "../onnx/proto";
import { Attribute, AttributeType } from "./attribute";
import { Graph } from "./graph";
import { Model, ModelFunction } from "./model";
import { Node } from "./node";
import { Dim, ValueType } from "./types";
import { Value } from "./value";

/** Serializes the IR; initializers go to `sink` when it accepts them, inline otherwise. */
export function modelToProto(model: Model, sink?: ExternalDataSink): ModelProto {
  const writer = new ProtoWriter(sink);
  const proto: ModelProto = {
    irVersion: model.irVersion,
    opsetImport: opsetList(model.opsetImports),
    graph: writer.graph(model.graph),
    metadataProps: model.metadataProps,
    trainingInfo: model.trainingInfo,
    functions: model.functions.map((fn) => writer.function(fn)),
    configuration: model.configuration,
  };
  if (model.producerName) proto.producerName = model.producerName;
  if (model.producerVersion) proto.producerVersion = model.producerVersion;
  if (model.domain) proto.domain = model.domain;
  if (model.modelVersion) proto.modelVersion = bigIntToInt64(model.modelVersion);
  if (model.docString) proto.docString = model.docString;
  return proto;
}

function opsetList(imports: Map<string, number>): OperatorSetIdProto[] {
  return [...imports].map(([domain, version]) => ({ domain, version }));
}

function dimToProto(dim: Dim): TensorShapeDimensionProto {
  if (typeof dim === "number") return { dimValue: dim };
  if (typeof dim === "string") return { dimParam: dim };
  return {};
}

export function typeToProto(type: ValueType): TypeProto {
  if (type.kind === "other") return type.proto;
  const tensorType: NonNullable<TypeProto["tensorType"]> = { elemType: type.elemType };
  if (type.shape) tensorType.shape = { dim: type.shape.map(dimToProto) };
  return { tensorType };
}

function valueInfo(value: Value): ValueInfoProto {
  const info: ValueInfoProto = { name: value.name };
  if (value.type) info.type = typeToProto(value.type);
  if (value.docString) info.docString = value.docString;
  if (value.metadataProps) info.metadataProps = value.metadataProps;
  return info;
}

class ProtoWriter {
  constructor(private readonly sink: ExternalDataSink | undefined) {}

  graph(graph: Graph): GraphProto {
    const proto: GraphProto = {
      node: graph.nodes.map((node) => this.node(node)),
      initializer: [...graph.initializers.values()].map((value) => tensorToProto(value.initializer!, this.sink)),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      valueInfo: [...graph.valueInfo.map(valueInfo), ...graph.extraValueInfo],
    };
    if (graph.name) proto.name = graph.name;
    if (graph.sparseInitializers.length) proto.sparseInitializer = graph.sparseInitializers;
    if (graph.quantizationAnnotation.length) proto.quantizationAnnotation = graph.quantizationAnnotation;
    if (graph.docString) proto.docString = graph.docString;
    if (graph.metadataProps) proto.metadataProps = graph.metadataProps;
    return proto;
  }

  node(node: Node): NodeProto {
    const proto: NodeProto = {
      input: node.inputs.map((value) => value?.name ?? ""),
      output: node.outputs.map((value) => value.name),
      opType: node.opType,
      attribute: [...node.attributes.values()].map((attribute) => this.attribute(attribute)),
    };
    if (node.name) proto.name = node.name;
    if (node.domain) proto.domain = node.domain;
    if (node.overload) proto.overload = node.overload;
    if (node.docString) proto.docString = node.docString;
    if (node.metadataProps) proto.metadataProps = node.metadataProps;
    if (node.deviceConfigurations) proto.deviceConfigurations = node.deviceConfigurations;
    return proto;
  }

  attribute(attribute: Attribute): AttributeProto {
    const proto: AttributeProto = { name: attribute.name, type: attribute.type };
    if (attribute.docString) proto.docString = attribute.docString;
    if (attribute.refAttrName) proto.refAttrName = attribute.refAttrName;
    switch (attribute.type) {
      case AttributeType.FLOAT:
        proto.f = attribute.value;
        break;
      case AttributeType.INT:
        proto.i = bigIntToInt64(attribute.value);
        break;
      case AttributeType.STRING:
        proto.s = attribute.value;
        break;
      case AttributeType.TENSOR:
        // Constant tensors stay inline: onnxruntime resolves external data only for initializers.
        proto.t = tensorToProto(attribute.value);
        break;
      case AttributeType.GRAPH:
        proto.g = this.graph(attribute.value);
        break;
      case AttributeType.FLOATS:
        proto.floats = attribute.value;
        break;
      case AttributeType.INTS:
        proto.ints = attribute.value.map(bigIntToInt64);
        break;
      case AttributeType.STRINGS:
        proto.strings = attribute.value;
        break;
      case AttributeType.TENSORS:
        proto.tensors = attribute.value.map((tensor) => tensorToProto(tensor));
        break;
      case AttributeType.GRAPHS:
        proto.graphs = attribute.value.map((graph) => this.graph(graph));
        break;
      case AttributeType.SPARSE_TENSOR:
        proto.sparseTensor = attribute.value;
        break;
      case AttributeType.SPARSE_TENSORS:
        proto.sparseTensors = attribute.value;
        break;
      case AttributeType.TYPE_PROTO:
        proto.tp = attribute.value;
        break;
      case AttributeType.TYPE_PROTOS:
        proto.typeProtos = attribute.value;
        break;
      case AttributeType.UNDEFINED:
        delete proto.type;
        break;
    }
    return proto;
  }

  function(fn: ModelFunction): FunctionProto {
    const proto: FunctionProto = {
      name: fn.name,
      input: fn.body.inputs.map((value) => value.name),
      output: fn.body.outputs.map((value) => value.name),
      attribute: fn.attributeNames,
      attributeProto: fn.attributeProtos,
      node: fn.body.nodes.map((node) => this.node(node)),
      opsetImport: opsetList(fn.opsetImports),
      domain: fn.domain,
      valueInfo: fn.valueInfo,
    };
    if (fn.overload) proto.overload = fn.overload;
    if (fn.docString) proto.docString = fn.docString;
    if (fn.metadataProps) proto.metadataProps = fn.metadataProps;
    return proto;
  }
}
