import { Tensor } from "../onnx/tensor";
import { Attribute, AttributeType } from "./attribute";
import { Graph } from "./graph";
import { Model, ModelFunction } from "./model";
import { NameAllocator } from "./names";
import { Node } from "./node";
import { ValueType } from "./types";
import { Value } from "./value";

/**
 * Deep-copies a model: graphs, nodes, values and attributes are new objects
 * with the same names, so edits to the copy leave the original alone.
 * Tensor data is shared, because tensors are never changed in place.
 */
export function cloneModel(model: Model): Model {
  const names = new NameAllocator();
  const copy = new Model({
    irVersion: model.irVersion,
    opsetImports: new Map(model.opsetImports),
    graphName: model.graph.name,
    names,
  });
  copy.producerName = model.producerName;
  copy.producerVersion = model.producerVersion;
  copy.domain = model.domain;
  copy.modelVersion = model.modelVersion;
  copy.docString = model.docString;
  copy.metadataProps = [...model.metadataProps];
  copy.trainingInfo = [...model.trainingInfo];
  copy.configuration = [...model.configuration];
  copy.loadWarnings.push(...model.loadWarnings);
  const cloner = new Cloner();
  cloner.fill(model.graph, copy.graph);
  for (const fn of model.functions) copy.functions.push(cloner.function(fn, names));
  return copy;
}

function cloneTensor(tensor: Tensor): Tensor {
  return new Tensor(tensor.name, tensor.dtype, tensor.dims, tensor.source, { ...tensor.extras });
}

function cloneType(type: ValueType | undefined): ValueType | undefined {
  if (!type || type.kind === "other") return type;
  return { kind: "tensor", elemType: type.elemType, shape: type.shape ? [...type.shape] : undefined };
}

class Cloner {
  private readonly values = new Map<Value, Value>();

  fill(source: Graph, target: Graph): void {
    target.docString = source.docString;
    target.metadataProps = source.metadataProps;
    target.sparseInitializers = [...source.sparseInitializers];
    target.quantizationAnnotation = [...source.quantizationAnnotation];
    target.extraValueInfo = [...source.extraValueInfo];
    for (const value of source.inputs) target.inputs.push(this.define(value, target));
    for (const value of source.initializers.values()) {
      const copy = this.values.get(value) ?? this.define(value, target);
      copy.initializer = cloneTensor(value.initializer!);
      target.initializers.set(copy.name, copy);
    }
    const nodes = source.nodes.map((node) => {
      const copy = new Node(target, { name: node.name, opType: node.opType, domain: node.domain });
      target.names.reserve(node.name);
      copy.overload = node.overload;
      copy.docString = node.docString;
      copy.metadataProps = node.metadataProps;
      copy.deviceConfigurations = node.deviceConfigurations;
      for (const output of node.outputs) copy.attachOutput(output.isOmitted ? target.createOmittedValue() : this.define(output, target));
      target.appendLoadedNode(copy);
      return copy;
    });
    source.nodes.forEach((node, i) => {
      const copy = nodes[i];
      copy.setInputs(node.inputs.map((input) => (input ? this.mapped(input) : undefined)));
      for (const attribute of node.attributes.values()) copy.setAttribute(this.attribute(attribute, copy));
    });
    for (const value of source.valueInfo) target.valueInfo.push(this.mapped(value));
    for (const value of source.outputs) target.outputs.push(this.mapped(value));
  }

  private define(value: Value, graph: Graph): Value {
    const copy = graph.createValue(value.name, cloneType(value.type), true);
    copy.docString = value.docString;
    copy.metadataProps = value.metadataProps;
    this.values.set(value, copy);
    return copy;
  }

  private mapped(value: Value): Value {
    const copy = this.values.get(value);
    if (!copy) throw new Error(`bug: value "${value.name}" was read before the clone defined it`);
    return copy;
  }

  private attribute(attribute: Attribute, owner: Node): Attribute {
    const subgraph = (graph: Graph): Graph => {
      const copy = new Graph(owner.graph.names, graph.name, owner);
      this.fill(graph, copy);
      return copy;
    };
    switch (attribute.type) {
      case AttributeType.GRAPH:
        return { ...attribute, value: subgraph(attribute.value) };
      case AttributeType.GRAPHS:
        return { ...attribute, value: attribute.value.map(subgraph) };
      case AttributeType.TENSOR:
        return { ...attribute, value: cloneTensor(attribute.value) };
      case AttributeType.TENSORS:
        return { ...attribute, value: attribute.value.map(cloneTensor) };
      case AttributeType.INTS:
      case AttributeType.FLOATS:
      case AttributeType.STRINGS:
        return { ...attribute, value: [...attribute.value] } as Attribute;
      default:
        return { ...attribute };
    }
  }

  function(fn: ModelFunction, names: NameAllocator): ModelFunction {
    const body = new Graph(names, fn.body.name);
    this.fill(fn.body, body);
    return { ...fn, body, opsetImports: new Map(fn.opsetImports), attributeNames: [...fn.attributeNames] };
  }
}
