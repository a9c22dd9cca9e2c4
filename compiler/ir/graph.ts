import { PeftcError } from "../errors";
import { SparseTensorProto, StringStringEntryProto, TensorAnnotation, ValueInfoProto } from "../onnx/proto";
import { Tensor } from "../onnx/tensor";
import { Attribute } from "./attribute";
import { NameAllocator } from "./names";
import { forEachGraph } from "./traverse";
import { Node } from "./node";
import { ValueType, tensorType } from "./types";
import { Value } from "./value";

/** Description of a node for `Graph.addNode` to build. */
export interface NodeSpec {
  opType: string;
  domain?: string;
  /** Base for the node name; made unique across the model. */
  name?: string;
  inputs?: readonly (Value | undefined)[];
  /** Output values to create: a count, or names (made unique). Default one output. */
  outputs?: number | readonly string[];
  attributes?: readonly Attribute[];
}

/** Position of a new node in the node list. */
export type Position = { before: Node } | { after: Node } | "end";

/**
 * A graph: nodes in a list whose order is kept (exporters do not always sort
 * them, see topologicalSort), graph inputs and outputs, initializers, and
 * the values defined here. A subgraph (If branch, Loop body) reads values of
 * enclosing graphs by name, as ONNX scoping allows.
 */
export class Graph {
  name: string;
  docString: string | undefined;
  metadataProps: StringStringEntryProto[] | undefined;
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  /** Initializers in file order. */
  readonly initializers = new Map<string, Value>();
  /** Values whose types are written to value_info, in order. */
  readonly valueInfo: Value[] = [];
  /** value_info entries kept verbatim: those naming no value (optimizers leave them behind) or a graph input or output. */
  extraValueInfo: ValueInfoProto[] = [];
  sparseInitializers: SparseTensorProto[] = [];
  quantizationAnnotation: TensorAnnotation[] = [];
  private readonly valuesByName = new Map<string, Value>();

  constructor(
    readonly names: NameAllocator,
    name: string,
    /** The node whose attribute contains this graph; undefined for the main graph and function bodies. */
    readonly owner?: Node,
  ) {
    this.name = name;
  }

  /** The graph whose values this one can read by name. */
  get outer(): Graph | undefined {
    return this.owner?.graph;
  }

  /** Values defined in this graph (inputs, initializers, node outputs). */
  get values(): IterableIterator<Value> {
    return this.valuesByName.values();
  }

  /** Finds a value defined here or, failing that, in an enclosing graph. */
  lookup(name: string): Value | undefined {
    return this.valuesByName.get(name) ?? this.outer?.lookup(name);
  }

  /** Finds a value defined in this graph only. */
  getLocal(name: string): Value | undefined {
    return this.valuesByName.get(name);
  }

  /** Creates a value owned by this graph; the name is made unique unless `exact`. */
  createValue(name: string, type?: ValueType, exact = false): Value {
    if (exact) {
      if (this.valuesByName.has(name)) {
        throw new PeftcError("E_IR_INVARIANT", `graph "${this.name}": value "${name}" is defined twice.`, { value: name });
      }
      this.names.reserve(name);
    } else {
      name = this.names.fresh(name);
    }
    const value = new Value(this, name, type);
    this.valuesByName.set(name, value);
    return value;
  }

  /**
   * Creates the placeholder for an omitted optional output (written as "" in
   * ONNX, as in SkipLayerNormalization's unused mean and inv_std_var). It has
   * no name, is never in the name table and cannot be read.
   */
  createOmittedValue(): Value {
    return new Value(this, "");
  }

  /** @internal Keeps the name table in step with Value.name. */
  renameValue(value: Value, next: string): void {
    if (this.valuesByName.get(next) && this.valuesByName.get(next) !== value) {
      throw new PeftcError("E_IR_INVARIANT", `graph "${this.name}": cannot rename "${value.name}" to "${next}", which is taken.`);
    }
    this.valuesByName.delete(value.name);
    this.valuesByName.set(next, value);
    this.names.reserve(next);
    if (this.initializers.has(value.name)) {
      const entries = [...this.initializers.entries()].map(([key, item]) => [key === value.name ? next : key, item] as const);
      this.initializers.clear();
      for (const [key, item] of entries) this.initializers.set(key, item);
      if (value.initializer) value.initializer.name = next;
    }
  }

  /**
   * Exchanges the names of two node outputs of this graph. A rewrite that
   * appends a node after a graph output uses it so the graph keeps its
   * output names.
   */
  swapNames(a: Value, b: Value): void {
    if (a.graph !== this || b.graph !== this) throw new PeftcError("E_IR_INVARIANT", `graph "${this.name}": swapNames takes two values of this graph.`);
    if (a.initializer || b.initializer) throw new PeftcError("E_IR_INVARIANT", `graph "${this.name}": swapNames cannot rename initializers "${a.name}" and "${b.name}".`);
    const [first, second] = [a.name, b.name];
    a.assignName(second);
    b.assignName(first);
    this.valuesByName.set(second, a);
    this.valuesByName.set(first, b);
  }

  addInput(name: string, type: ValueType): Value {
    const value = this.createValue(name, type, true);
    this.inputs.push(value);
    return value;
  }

  /** Adds a constant initializer under the tensor's name (made unique). */
  addInitializer(tensor: Tensor, exact = false): Value {
    const value = this.createValue(tensor.name, tensorType(tensor.dtype, [...tensor.dims]), exact);
    tensor.name = value.name;
    value.initializer = tensor;
    this.initializers.set(value.name, value);
    return value;
  }

  /** Stops treating `value` as an initializer; it must be unused or become a graph input. */
  removeInitializer(value: Value): void {
    this.initializers.delete(value.name);
    value.initializer = undefined;
    if (value.uses.length === 0 && !value.isGraphInput && !value.isGraphOutput) this.valuesByName.delete(value.name);
  }

  addOutput(value: Value): void {
    this.outputs.push(value);
  }

  /** @internal Redirects outputs of this graph and of every graph nested in it from `previous` to `next`. */
  replaceOutput(previous: Value, next: Value): void {
    forEachGraph(this, (graph) => {
      for (let i = 0; i < graph.outputs.length; i++) if (graph.outputs[i] === previous) graph.outputs[i] = next;
    });
  }

  /** True when `value` is an output of this graph or of a subgraph nested in it (an If branch may return an outer value). */
  isReturned(value: Value): boolean {
    let returned = false;
    forEachGraph(this, (graph) => {
      returned ||= graph.outputs.includes(value);
    });
    return returned;
  }

  /** Builds a node from `spec`, links its inputs and outputs, and places it. */
  addNode(spec: NodeSpec, position: Position = "end"): Node {
    const insertAt = this.insertionIndex(position);
    const base = spec.name ?? spec.opType;
    const node = new Node(this, { name: this.names.fresh(base), opType: spec.opType, domain: spec.domain });
    for (const attribute of spec.attributes ?? []) node.setAttribute(attribute);
    node.setInputs(spec.inputs ?? []);
    const outputs = spec.outputs ?? 1;
    const outputNames = typeof outputs === "number" ? Array.from({ length: outputs }, (_, i) => `${node.name}_output_${i}`) : outputs;
    for (const outputName of outputNames) node.attachOutput(this.createValue(outputName));
    this.nodes.splice(insertAt, 0, node);
    return node;
  }

  /**
   * @internal Adds a node built by the proto reader, whose names are already
   * unique and whose outputs were created with exact names.
   */
  appendLoadedNode(node: Node): void {
    this.nodes.push(node);
  }

  /** Checks `position` before anything changes, so a bad anchor leaves the graph as it was. */
  private insertionIndex(position: Position): number {
    if (position === "end") return this.nodes.length;
    const anchor = "before" in position ? position.before : position.after;
    const at = this.nodes.indexOf(anchor);
    if (at < 0) throw new PeftcError("E_IR_INVARIANT", `graph "${this.name}": anchor node "${anchor.name}" is not in this graph.`);
    return "before" in position ? at : at + 1;
  }

  /**
   * Removes a node. Its outputs must be unused (rewire them first with
   * replaceAllUsesWith) unless `dropOutputs` also removes their values.
   */
  removeNode(node: Node): void {
    const at = this.nodes.indexOf(node);
    if (at < 0) throw new PeftcError("E_IR_INVARIANT", `graph "${this.name}": node "${node.name}" is not in this graph.`);
    for (const output of node.outputs) {
      if (output.uses.length > 0 || this.isReturned(output)) {
        const reader = output.uses[0] ? `node "${output.uses[0].node.name}"` : "the outputs of this graph or a subgraph";
        throw new PeftcError(
          "E_IR_INVARIANT",
          `cannot remove node "${node.name}": its output "${output.name}" is still read by ${reader}. Rewire its uses first.`,
          { node: node.name, value: output.name },
        );
      }
    }
    this.nodes.splice(at, 1);
    node.markRemoved();
    node.detachInputs();
    // Subgraph nodes go with their owner, so their reads of outer values must end too.
    for (const subgraph of node.subgraphs) detachAll(subgraph);
    for (const output of node.outputs) this.valuesByName.delete(output.name);
    node.detachOutputs();
  }

  /** Replaces `node` by a new node from `spec`, moving every use of the old outputs to the new ones. */
  replaceNode(node: Node, spec: NodeSpec): Node {
    const outputs = spec.outputs ?? node.outputs.length;
    const count = typeof outputs === "number" ? outputs : outputs.length;
    const stranded = node.outputs.slice(count).find((output) => output.uses.length > 0 || this.isReturned(output));
    if (stranded) {
      throw new PeftcError(
        "E_IR_INVARIANT",
        `cannot replace node "${node.name}" with a node of ${count} outputs: its output "${stranded.name}" is still read and would have no replacement.`,
        { node: node.name, value: stranded.name },
      );
    }
    const replacement = this.addNode({ ...spec, outputs }, { before: node });
    node.outputs.forEach((output, i) => {
      const next = replacement.outputs[i];
      if (next) {
        next.type = next.type ?? output.type;
        output.replaceAllUsesWith(next);
      }
    });
    this.removeNode(node);
    return replacement;
  }
}

function detachAll(graph: Graph): void {
  for (const node of graph.nodes) {
    node.detachInputs();
    for (const subgraph of node.subgraphs) detachAll(subgraph);
  }
}
