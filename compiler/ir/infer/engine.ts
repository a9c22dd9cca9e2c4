import { isPeftcError } from "../../errors";
import { Attribute, attributeGraphs } from "../attribute";
import type { Graph } from "../graph";
import type { Model, ModelFunction } from "../model";
import type { Node } from "../node";
import { topologicalOrder } from "../topological-sort";
import { forEachGraph } from "../traverse";
import { Dim, ValueType, formatType, tensorType } from "../types";
import type { Value } from "../value";
import { InferenceContext, InferenceHost, MissingInputType, OutputResult, TypedData } from "./context";
import { defaultAttribute } from "./function-attributes";
import { KnownData, dataFromTensor } from "./known-data";
import { applyAliases, isPlainName, mergeTypes } from "./merge";
import { ShapeRuleRegistry, normalizeDomain } from "./registry";
import { InferenceReport, InferredValue, UntypedValue, emptyReport } from "./report";

/** Storage for value types: the values themselves, or a map per call inside function bodies. */
interface TypeStore {
  get(value: Value): ValueType | undefined;
  set(value: Value, type: ValueType): void;
}

/** A model-local function being inferred for one call. */
interface FunctionCall {
  node: Node;
  fn: ModelFunction;
  caller: Scope;
}

/** The state shared by the nodes of one graph walk: the main graph with its subgraphs, or one function call. */
interface Scope {
  types: TypeStore;
  data: Map<Value, KnownData>;
  opsets: ReadonlyMap<string, number>;
  /** Report label of the outermost graph of the scope. */
  label: string;
  call?: FunctionCall;
}

/**
 * Infers element types and shapes over a whole model: graphs in
 * topological order, subgraphs through their owners' rules, model-local
 * functions through their bodies with each call's input types.
 */
export class ShapeInferenceEngine {
  private readonly report: InferenceReport = emptyReport();
  /** Types the file declared, taken before inference writes anything. */
  private readonly declared = new Map<Value, ValueType>();
  /** Types computed with in the model's graphs (see MergedType.working); written to the values at the end. */
  private readonly working = new Map<Value, ValueType>();
  /** Derived dimension (canonical text) to the name a graph declares for it. */
  private readonly aliases = new Map<string, string>();
  private readonly recorded = new Map<Value, string>();
  private readonly untyped = new Map<Value, UntypedValue>();
  private readonly reportedNodes = new Set<Node>();
  private readonly activeFunctions: ModelFunction[] = [];
  /** Dimension names declared by the main graph's inputs (see mergeTypes). */
  private readonly inputAxisNames: ReadonlySet<string>;

  constructor(
    private readonly model: Model,
    private readonly registry: ShapeRuleRegistry,
  ) {
    this.inputAxisNames = inputAxisNames(model.graph);
  }

  run(): InferenceReport {
    this.snapshotDeclared();
    const scope: Scope = {
      types: { get: (value) => this.working.get(value) ?? this.declared.get(value), set: (value, type) => this.working.set(value, type) },
      data: new Map(),
      opsets: this.model.opsetImports,
      label: this.model.graph.name || "main",
    };
    this.inferGraph(this.model.graph, scope);
    this.finishReport(scope.data);
    return this.report;
  }

  /**
   * Takes every declared type. A declared size that is not a non-negative
   * integer (some exporters write -1 for "any size") counts as unknown.
   */
  private snapshotDeclared(): void {
    const take = (graph: Graph): void =>
      forEachGraph(graph, (each) => {
        for (const value of each.values) if (value.type) this.declared.set(value, withValidSizes(value.type));
      });
    take(this.model.graph);
    for (const fn of this.model.functions) take(fn.body);
  }

  private inferGraph(graph: Graph, scope: Scope): void {
    for (const value of graph.initializers.values()) {
      this.checkInitializer(value, scope);
      const data = value.isConstant ? dataFromTensor(value.initializer!) : undefined;
      if (data) scope.data.set(value, data);
    }
    let order: Node[];
    try {
      order = topologicalOrder(graph);
    } catch (error) {
      if (!isPeftcError(error)) throw error;
      this.report.failures.push({ graph: this.labelOf(graph, scope), node: "", opType: "", domain: "", message: error.message });
      order = graph.nodes;
    }
    for (const node of order) this.inferNode(node, scope);
  }

  private inferNode(node: Node, scope: Scope): void {
    const fn = this.model.findFunction(node.domain, node.opType, node.overload ?? "");
    if (fn) {
      this.inferFunctionCall(node, fn, scope);
      return;
    }
    const domain = normalizeDomain(node.domain);
    // NOTE: onnxruntime runs nodes of its own domains without an opset
    // import as version 1, and here any domain the graph does not import is treated so.
    const opset = scope.opsets.get(domain) ?? (domain === "" ? scope.opsets.get("ai.onnx") : undefined) ?? 1;
    const rule = this.registry.resolve(domain, node.opType, opset);
    if (!rule) {
      if (this.firstReport(node)) {
        this.report.unsupported.push({ graph: this.labelOf(node.graph, scope), node: node.name, opType: node.opType, domain, opset });
      }
      this.markUntyped(node, scope, `no shape rule covers ${node.qualifiedOpType} at opset ${opset}`);
      return;
    }
    const ctx = new InferenceContext(node, opset, this.hostFor(scope));
    try {
      rule.infer(ctx);
    } catch (error) {
      if (error instanceof MissingInputType) {
        this.markUntyped(node, scope, `input "${error.valueName}" has no known type`);
        return;
      }
      this.recordFailure(node, scope, error);
      return;
    }
    this.applyOutputs(node, ctx.outputs, scope);
  }

  /**
   * Records a rule's failure on a node. An error other than the rule's own
   * E_SHAPE_INFERENCE (a TypeError or RangeError from a case the rule does
   * not handle) is recorded too, naming the node, so one strange node never
   * stops inference of the rest of the model.
   */
  private recordFailure(node: Node, scope: Scope, error: unknown): void {
    if (this.firstReport(node)) {
      let value = node.outputs.find((output) => !output.isOmitted)?.name;
      let message = `node "${node.name || "(unnamed)"}" (${node.qualifiedOpType}): the shape rule raised an internal error (${String(error)}). This is a bug in peftc; report it with the model.`;
      if (isPeftcError(error)) {
        value = typeof error.details.value === "string" ? error.details.value : undefined;
        message = error.message;
      }
      this.report.failures.push({ graph: this.labelOf(node.graph, scope), node: node.name, opType: node.opType, domain: normalizeDomain(node.domain), value, message });
    }
    this.markUntyped(node, scope, "its shape rule failed");
  }

  /**
   * Reports an initializer whose declared type (a graph input or value_info
   * of the same name) disagrees with the tensor it holds. onnxruntime 1.31
   * rejects such a file. Inference keeps the declared type.
   */
  private checkInitializer(value: Value, scope: Scope): void {
    const declared = this.declared.get(value);
    const tensor = value.initializer!;
    const stored = tensorType(tensor.dtype, [...tensor.dims]);
    if (!declared || mergeTypes(declared, stored).conflicts.length === 0) return;
    const graph = this.labelOf(value.graph, scope);
    const detail = `declared ${formatType(declared)} but the initializer holds ${formatType(stored)}`;
    if (this.report.conflicts.some((entry) => entry.graph === graph && entry.value === value.name && entry.detail === detail)) return;
    this.report.conflicts.push({ graph, value: value.name, node: "", declared: formatType(declared), inferred: formatType(stored), detail });
  }

  private applyOutputs(node: Node, results: ReadonlyMap<number, OutputResult>, scope: Scope): void {
    node.outputs.forEach((value, index) => {
      if (value.isOmitted) return;
      const result = results.get(index);
      if (result) this.assign(value, node, result, scope);
      else this.markValueUntyped(value, node, scope, `the ${node.qualifiedOpType} rule cannot determine output ${index}`);
    });
  }

  private assign(value: Value, node: Node, result: OutputResult, scope: Scope): void {
    const inferred = result.type;
    const merged = mergeTypes(this.declared.get(value), inferred, this.inputAxisNames);
    for (const detail of merged.conflicts) {
      const graph = this.labelOf(node.graph, scope);
      const duplicate = this.report.conflicts.some((entry) => entry.value === value.name && entry.detail === detail && entry.graph === graph);
      if (!duplicate) {
        this.report.conflicts.push({ graph, value: value.name, node: node.name, declared: formatType(this.declared.get(value)), inferred: formatType(inferred), detail });
      }
    }
    for (const [derived, name] of merged.aliases) if (!this.aliases.has(derived)) this.aliases.set(derived, name);
    scope.types.set(value, merged.working);
    if (result.data) scope.data.set(value, result.data);
    else scope.data.delete(value);
    if (!scope.call) {
      this.recorded.set(value, this.labelOf(node.graph, scope));
      this.untyped.delete(value);
    }
  }

  private markUntyped(node: Node, scope: Scope, reason: string): void {
    for (const value of node.outputs) if (!value.isOmitted) this.markValueUntyped(value, node, scope, reason);
  }

  private markValueUntyped(value: Value, node: Node, scope: Scope, reason: string): void {
    scope.data.delete(value);
    if (scope.call || scope.types.get(value)) return;
    this.untyped.set(value, { graph: this.labelOf(node.graph, scope), value: value.name, node: node.name, reason });
  }

  private firstReport(node: Node): boolean {
    if (this.reportedNodes.has(node)) return false;
    this.reportedNodes.add(node);
    return true;
  }

  private hostFor(scope: Scope): InferenceHost {
    return {
      typeOf: (value) => scope.types.get(value),
      dataOf: (value) => scope.data.get(value),
      attribute: (node, name) => this.attributeIn(scope, node, name),
      inferSubgraph: (graph, inputs) => this.inferSubgraph(graph, inputs, scope),
    };
  }

  /** Binds the given types to a subgraph's inputs, infers it and returns its outputs. */
  private inferSubgraph(graph: Graph, inputs: readonly (TypedData | undefined)[], scope: Scope): TypedData[] {
    graph.inputs.forEach((formal, index) => {
      const given = inputs[index];
      if (given?.type) scope.types.set(formal, mergeTypes(this.declared.get(formal), given.type, this.inputAxisNames).working);
      if (given?.data) scope.data.set(formal, given.data);
      else scope.data.delete(formal);
    });
    this.inferGraph(graph, scope);
    return graph.outputs.map((output) => ({ type: scope.types.get(output), data: scope.data.get(output) }));
  }

  /**
   * Infers a model-local function through its body with this call's input
   * types and known values. Types inside the body are kept per call, so
   * two calls with different shapes do not mix.
   */
  private inferFunctionCall(node: Node, fn: ModelFunction, caller: Scope): void {
    const name = `${fn.domain}::${fn.name}`;
    if (this.activeFunctions.includes(fn)) {
      this.reportRecursion(node, name, caller);
      return;
    }
    const scope = this.callScope(node, fn, caller);
    this.activeFunctions.push(fn);
    try {
      this.inferGraph(fn.body, scope);
    } finally {
      this.activeFunctions.pop();
    }
    node.outputs.forEach((value, index) => {
      const formal = fn.body.outputs[index];
      const type = formal && scope.types.get(formal);
      if (value.isOmitted) return;
      if (type) this.assign(value, node, { type, data: scope.data.get(formal) }, caller);
      else this.markValueUntyped(value, node, caller, `function ${name} does not determine output ${index}`);
    });
  }

  /** Creates the scope of one function call, with the call's input types and values bound to the body's inputs. */
  private callScope(node: Node, fn: ModelFunction, caller: Scope): Scope {
    const local = new Map<Value, ValueType>();
    const scope: Scope = {
      types: { get: (value) => local.get(value) ?? this.declared.get(value), set: (value, type) => local.set(value, type) },
      data: new Map(),
      opsets: new Map([...caller.opsets, ...fn.opsetImports]),
      label: `function ${fn.domain}::${fn.name}`,
      call: { node, fn, caller },
    };
    fn.body.inputs.forEach((formal, index) => {
      const actual = node.inputs[index];
      const type = actual && caller.types.get(actual);
      if (type) local.set(formal, type);
      const data = actual && caller.data.get(actual);
      if (data) scope.data.set(formal, data);
    });
    return scope;
  }

  private reportRecursion(node: Node, name: string, caller: Scope): void {
    if (this.firstReport(node)) {
      this.report.failures.push({
        graph: this.labelOf(node.graph, caller),
        node: node.name,
        opType: node.opType,
        domain: node.domain,
        message: `node "${node.name}" calls function ${name}, which is already being inferred: recursive functions are not valid ONNX. Remove the recursion from the model's functions.`,
      });
    }
    this.markUntyped(node, caller, `recursive call of function ${name}`);
  }

  /** Reads an attribute; inside a function body a reference (`ref_attr_name`) reads the calling node's attribute. */
  private attributeIn(scope: Scope, node: Node, name: string): Attribute | undefined {
    const attribute = node.attributes.get(name);
    const call = scope.call;
    if (!attribute?.refAttrName || !call) return attribute;
    const given = this.attributeIn(call.caller, call.node, attribute.refAttrName) ?? defaultAttribute(call.fn, attribute.refAttrName);
    return given && { ...given, name, refAttrName: undefined };
  }

  /** Names a graph for the report: the outermost graph, then `/node/attribute` for each subgraph level. */
  private labelOf(graph: Graph, scope: Scope): string {
    const owner = graph.owner;
    if (!owner) return scope.label;
    const attribute = [...owner.attributes.values()].find((each) => attributeGraphs(each).includes(graph));
    return `${this.labelOf(owner.graph, scope)}/${owner.name || owner.opType}/${attribute?.name ?? graph.name}`;
  }

  /** Writes the kept types to the values, naming derived dimensions as the graph does, and fills the report. */
  private finishReport(data: ReadonlyMap<Value, KnownData>): void {
    for (const [value, type] of this.working) {
      const named = type.kind === "tensor" ? applyAliases(type, this.aliases) : type;
      const kept = mergeTypes(this.declared.get(value), named, this.inputAxisNames).type;
      value.type = kept;
      const graph = this.recorded.get(value);
      if (graph === undefined) continue;
      const entry: InferredValue = { graph, value: value.name, type: kept };
      const values = data.get(value)?.values;
      if (values?.some((element) => element !== null)) entry.values = values;
      this.report.inferred.push(entry);
      const shape = kept.kind === "tensor" ? kept.shape : [];
      if (!shape || shape.includes(null)) this.report.incomplete.push(entry);
    }
    this.report.untyped.push(...this.untyped.values());
  }
}

/** Collects the plain dimension names (`batch`, not `past+seq`) that a graph's inputs declare. */
function inputAxisNames(graph: Graph): Set<string> {
  const names = new Set<string>();
  for (const input of graph.inputs) {
    const shape = input.type?.kind === "tensor" ? input.type.shape : undefined;
    for (const dim of shape ?? []) if (typeof dim === "string" && isPlainName(dim)) names.add(dim);
  }
  return names;
}

function isValidSize(dim: Dim): boolean {
  return typeof dim !== "number" || (Number.isInteger(dim) && dim >= 0);
}

/** Returns `type` with every numeric size that is not a non-negative integer replaced by unknown (null). */
function withValidSizes(type: ValueType): ValueType {
  if (type.kind !== "tensor" || !type.shape || type.shape.every(isValidSize)) return type;
  return { ...type, shape: type.shape.map((dim) => (isValidSize(dim) ? dim : null)) };
}
