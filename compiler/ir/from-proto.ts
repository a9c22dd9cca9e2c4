import { PeftcError } from "../errors";
import { DataType } from "../onnx/dtype";
import { ExternalDataContext } from "../onnx/external-data";
import { tensorFromProto } from "../onnx/model-file";
import {
  AttributeProto,
  FunctionProto,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetIdProto,
  TypeProto,
  ValueInfoProto,
  int64ToBigInt,
  int64ToNumber,
} from "../onnx/proto";
import { Attribute, AttributeType } from "./attribute";
import { Graph } from "./graph";
import { Model, ModelFunction } from "./model";
import { NameAllocator } from "./names";
import { Node } from "./node";
import { Dim, ValueType } from "./types";

/** Builds the IR of a decoded model. `context` locates external data; omit it for in-memory models. */
export function modelFromProto(proto: ModelProto, source: string, context?: ExternalDataContext): Model {
  const reader = new ProtoReader(source, context);
  const names = new NameAllocator();
  const model = new Model({
    irVersion: int64ToNumber(proto.irVersion, "ir_version"),
    opsetImports: opsetMap(proto.opsetImport ?? []),
    graphName: proto.graph?.name ?? "",
    names,
  });
  model.producerName = proto.producerName ?? "";
  model.producerVersion = proto.producerVersion ?? "";
  model.domain = proto.domain ?? "";
  model.modelVersion = int64ToBigInt(proto.modelVersion);
  model.docString = proto.docString || undefined;
  model.metadataProps = proto.metadataProps ?? [];
  model.trainingInfo = proto.trainingInfo ?? [];
  model.configuration = proto.configuration ?? [];
  reader.fillGraph(model.graph, proto.graph ?? {});
  for (const fn of proto.functions ?? []) model.functions.push(reader.readFunction(fn, names));
  model.loadWarnings.push(...reader.warnings);
  return model;
}

function opsetMap(imports: OperatorSetIdProto[]): Map<string, number> {
  const map = new Map<string, number>();
  for (const entry of imports) map.set(entry.domain === "ai.onnx" ? "" : entry.domain ?? "", int64ToNumber(entry.version, "opset version"));
  return map;
}

/** Converts a TypeProto; tensor types become TensorType, the rest are carried as protos. */
export function typeFromProto(proto: TypeProto | null | undefined): ValueType | undefined {
  if (!proto) return undefined;
  const tensor = proto.tensorType;
  if (tensor && proto.value !== "sparseTensorType" && (proto.value === "tensorType" || proto.value === undefined)) {
    const shape = tensor.shape ? (tensor.shape.dim ?? []).map(dimFromProto) : undefined;
    return { kind: "tensor", elemType: (tensor.elemType ?? 0) as DataType, shape };
  }
  return { kind: "other", proto };
}

function dimFromProto(dim: { dimValue?: unknown; dimParam?: string | null; value?: string }): Dim {
  if (dim.value === "dimValue") return int64ToNumber(dim.dimValue as never, "dimension");
  if (dim.value === "dimParam" && dim.dimParam) return dim.dimParam;
  return null;
}

class ProtoReader {
  readonly warnings: string[] = [];

  constructor(
    private readonly source: string,
    private readonly context: ExternalDataContext | undefined,
  ) {}

  /**
   * Fills `graph` in two passes: first every value the graph defines, then
   * the nodes. Nodes may appear before their producers (some exporters do
   * not sort), and subgraphs may read any value of an enclosing graph.
   */
  fillGraph(graph: Graph, proto: GraphProto): void {
    graph.docString = proto.docString || undefined;
    graph.metadataProps = proto.metadataProps?.length ? proto.metadataProps : undefined;
    graph.sparseInitializers = proto.sparseInitializer ?? [];
    graph.quantizationAnnotation = proto.quantizationAnnotation ?? [];

    for (const info of proto.input ?? []) {
      const value = graph.createValue(this.requireName(info.name, graph, "graph input"), typeFromProto(info.type), true);
      this.copyValueInfoExtras(value, info);
      graph.inputs.push(value);
    }
    for (const tensorProto of proto.initializer ?? []) {
      const tensor = tensorFromProto(tensorProto, this.context);
      const existing = graph.getLocal(tensor.name);
      const value = existing ?? graph.createValue(this.requireName(tensor.name, graph, "initializer"), undefined, true);
      if (existing?.initializer) this.fail("E_ONNX_INVALID", `graph "${graph.name}": initializer "${tensor.name}" is defined twice.`);
      value.initializer = tensor;
      value.type ??= { kind: "tensor", elemType: tensor.dtype, shape: [...tensor.dims] };
      graph.initializers.set(value.name, value);
    }
    const nodes = (proto.node ?? []).map((nodeProto) => this.createNode(graph, nodeProto));
    (proto.node ?? []).forEach((nodeProto, i) => this.linkNode(graph, nodes[i], nodeProto));

    for (const info of proto.output ?? []) {
      const name = info.name ?? "";
      const value = graph.lookup(name);
      if (!value) {
        this.fail("E_IR_UNDEFINED_VALUE", `graph "${graph.name}": output "${name}" is not produced by any node, input or initializer.`, { value: name });
      }
      if (value.graph === graph && !value.isGraphInput) {
        value.type = typeFromProto(info.type) ?? value.type;
        this.copyValueInfoExtras(value, info);
      }
      graph.outputs.push(value);
    }
    for (const info of proto.valueInfo ?? []) {
      // Exporters annotate graph inputs and outputs twice, and the two can
      // disagree. The declaration wins, so such an entry is kept verbatim,
      // as is one that names no value.
      const value = graph.getLocal(info.name ?? "");
      if (!value || value.isGraphInput || value.isGraphOutput) {
        graph.extraValueInfo.push(info);
        continue;
      }
      value.type = typeFromProto(info.type) ?? value.type;
      this.copyValueInfoExtras(value, info);
      graph.valueInfo.push(value);
    }
  }

  private requireName(name: string | undefined, graph: Graph, what: string): string {
    if (!name) this.fail("E_ONNX_INVALID", `graph "${graph.name}": a ${what} has an empty name.`);
    return name;
  }

  private copyValueInfoExtras(value: { docString: string | undefined; metadataProps: ValueInfoProto["metadataProps"] }, info: ValueInfoProto): void {
    if (info.docString) value.docString = info.docString;
    if (info.metadataProps?.length) value.metadataProps = info.metadataProps;
  }

  private createNode(graph: Graph, proto: NodeProto): Node {
    const name = proto.name ?? "";
    graph.names.reserve(name);
    const node = new Node(graph, { name, opType: proto.opType ?? "", domain: proto.domain ?? "" });
    node.overload = proto.overload || undefined;
    node.docString = proto.docString || undefined;
    node.metadataProps = proto.metadataProps?.length ? proto.metadataProps : undefined;
    node.deviceConfigurations = proto.deviceConfigurations?.length ? proto.deviceConfigurations : undefined;
    for (const outputName of proto.output ?? []) {
      if (outputName === "") {
        node.attachOutput(graph.createOmittedValue());
        continue;
      }
      const earlier = graph.getLocal(outputName);
      if (earlier?.producer?.opType === "Constant" && node.opType === "Constant") {
        // onnxruntime keeps the last Constant written under a name and warns
        // (gpt2 tiny models from its test suite have 48 such pairs). Give the
        // earlier one a fresh, unread name so the IR stays single-assignment.
        earlier.name = graph.names.peek(`${outputName}_shadowed`);
        this.warnings.push(`node "${name}" redefines constant "${outputName}"; the earlier definition by node "${earlier.producer.name}" is unused, as in onnxruntime`);
      } else if (earlier) {
        const other = earlier.producer;
        const what = other ? `node "${other.name}"` : "a graph input or initializer";
        this.fail("E_IR_INVARIANT", `node "${name}" (${proto.opType}) writes "${outputName}", which ${what} already defines. ONNX values have one producer each.`, {
          node: name,
          value: outputName,
        });
      }
      node.attachOutput(graph.createValue(outputName, undefined, true));
    }
    graph.appendLoadedNode(node);
    return node;
  }

  private linkNode(graph: Graph, node: Node, proto: NodeProto): void {
    (proto.input ?? []).forEach((inputName, index) => {
      if (inputName === "") {
        node.setInput(index, undefined);
        return;
      }
      const value = graph.lookup(inputName);
      if (!value) {
        this.fail(
          "E_IR_UNDEFINED_VALUE",
          `node "${node.name}" (${node.qualifiedOpType}) reads "${inputName}", which no node, graph input or initializer defines. The graph is incomplete; re-export it.`,
          { node: node.name, value: inputName },
        );
      }
      node.setInput(index, value);
    });
    for (const attributeProto of proto.attribute ?? []) node.setAttribute(this.readAttribute(attributeProto, node));
  }

  readAttribute(proto: AttributeProto, owner: Node | undefined): Attribute {
    const base = { name: proto.name ?? "", docString: proto.docString || undefined, refAttrName: proto.refAttrName || undefined };
    const type = (proto.type ?? inferAttributeType(proto)) as AttributeType;
    const subgraph = (graphProto: GraphProto): Graph => {
      if (!owner) this.fail("E_ONNX_INVALID", `attribute "${base.name}" holds a graph outside any node.`);
      const graph = new Graph(owner.graph.names, graphProto.name ?? "", owner);
      this.fillGraph(graph, graphProto);
      return graph;
    };
    const tensor = (tensorProto: NonNullable<AttributeProto["t"]>) => tensorFromProto(tensorProto, this.context);
    switch (type) {
      case AttributeType.FLOAT:
        return { ...base, type, value: proto.f ?? 0 };
      case AttributeType.INT:
        return { ...base, type, value: int64ToBigInt(proto.i) };
      case AttributeType.STRING:
        return { ...base, type, value: proto.s ?? new Uint8Array() };
      case AttributeType.TENSOR:
        return { ...base, type, value: tensor(proto.t ?? {}) };
      case AttributeType.GRAPH:
        return { ...base, type, value: subgraph(proto.g ?? {}) };
      case AttributeType.FLOATS:
        return { ...base, type, value: proto.floats ?? [] };
      case AttributeType.INTS:
        return { ...base, type, value: (proto.ints ?? []).map(int64ToBigInt) };
      case AttributeType.STRINGS:
        return { ...base, type, value: proto.strings ?? [] };
      case AttributeType.TENSORS:
        return { ...base, type, value: (proto.tensors ?? []).map(tensor) };
      case AttributeType.GRAPHS:
        return { ...base, type, value: (proto.graphs ?? []).map(subgraph) };
      case AttributeType.SPARSE_TENSOR:
        return { ...base, type, value: proto.sparseTensor ?? {} };
      case AttributeType.SPARSE_TENSORS:
        return { ...base, type, value: proto.sparseTensors ?? [] };
      case AttributeType.TYPE_PROTO:
        return { ...base, type, value: proto.tp ?? {} };
      case AttributeType.TYPE_PROTOS:
        return { ...base, type, value: proto.typeProtos ?? [] };
      default:
        return { ...base, type: AttributeType.UNDEFINED, value: undefined };
    }
  }

  readFunction(proto: FunctionProto, names: NameAllocator): ModelFunction {
    const body = new Graph(names, proto.name ?? "");
    for (const inputName of proto.input ?? []) body.inputs.push(body.createValue(inputName, undefined, true));
    const nodes = (proto.node ?? []).map((nodeProto) => this.createNode(body, nodeProto));
    (proto.node ?? []).forEach((nodeProto, i) => this.linkNode(body, nodes[i], nodeProto));
    for (const outputName of proto.output ?? []) {
      const value = body.getLocal(outputName);
      if (!value) this.fail("E_IR_UNDEFINED_VALUE", `function "${proto.name}": output "${outputName}" is not defined in its body.`, { value: outputName });
      body.outputs.push(value);
    }
    return {
      name: proto.name ?? "",
      domain: proto.domain ?? "",
      overload: proto.overload || undefined,
      body,
      attributeNames: proto.attribute ?? [],
      attributeProtos: proto.attributeProto ?? [],
      opsetImports: opsetMap(proto.opsetImport ?? []),
      valueInfo: proto.valueInfo ?? [],
      docString: proto.docString || undefined,
      metadataProps: proto.metadataProps?.length ? proto.metadataProps : undefined,
    };
  }

  private fail(code: "E_ONNX_INVALID" | "E_IR_UNDEFINED_VALUE" | "E_IR_INVARIANT", message: string, details: Record<string, string> = {}): never {
    throw new PeftcError(code, `${this.source}: ${message}`, { file: this.source, ...details });
  }
}

/** IR 1 files omit AttributeProto.type; infer it from the field that is set. */
function inferAttributeType(proto: AttributeProto): AttributeType {
  if (proto.g) return AttributeType.GRAPH;
  if (proto.t) return AttributeType.TENSOR;
  if (proto.s && proto.s.length) return AttributeType.STRING;
  if (proto.floats?.length) return AttributeType.FLOATS;
  if (proto.ints?.length) return AttributeType.INTS;
  if (proto.strings?.length) return AttributeType.STRINGS;
  if (proto.tensors?.length) return AttributeType.TENSORS;
  if (proto.graphs?.length) return AttributeType.GRAPHS;
  if (proto.i !== undefined && int64ToBigInt(proto.i) !== 0n) return AttributeType.INT;
  if (proto.f) return AttributeType.FLOAT;
  return AttributeType.UNDEFINED;
}
