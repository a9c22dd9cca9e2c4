import { PeftcError } from "../errors";
import { Tensor } from "../onnx/tensor";
import { StringStringEntryProto } from "../onnx/proto";
import type { Graph } from "./graph";
import type { Node } from "./node";
import { ValueType } from "./types";

/** One use of a value: input `index` of `node`. */
export interface Use {
  node: Node;
  index: number;
}

/**
 * A named tensor in a graph: a graph input, an initializer, or a node
 * output. It records its producer and every (node, input index) that reads
 * it. Only Node and Graph methods change those links, which keeps them
 * consistent.
 */
export class Value {
  type: ValueType | undefined;
  /** Constant data when this value is an initializer. */
  initializer: Tensor | undefined;
  docString: string | undefined;
  metadataProps: StringStringEntryProto[] | undefined;
  private producerNode: Node | undefined;
  private producerOutput = -1;
  private readonly useList: Use[] = [];

  constructor(
    readonly graph: Graph,
    private valueName: string,
    type?: ValueType,
  ) {
    this.type = type;
  }

  get name(): string {
    return this.valueName;
  }

  /**
   * Renames the value; the graph's name table is kept in step. The new name
   * must be unused anywhere in the model (values and nodes share one name
   * table), because a subgraph resolves names through its enclosing graphs.
   */
  set name(next: string) {
    if (next === this.valueName) return;
    if (next === "") {
      throw new PeftcError("E_IR_INVARIANT", `cannot rename value "${this.valueName}" to "": an empty name marks an omitted optional input in ONNX.`);
    }
    if (this.graph.names.has(next)) {
      throw new PeftcError("E_IR_INVARIANT", `cannot rename value "${this.valueName}" to "${next}": the name is already used in the model. Pick an unused name.`);
    }
    this.graph.renameValue(this, next);
    this.valueName = next;
  }

  /** True for the placeholder of an omitted optional node output. */
  /** @internal Sets the name without checks; only Graph.swapNames calls it, and it keeps the name table in step. */
  assignName(next: string): void {
    this.valueName = next;
  }

  get isOmitted(): boolean {
    return this.valueName === "";
  }

  get producer(): Node | undefined {
    return this.producerNode;
  }

  /** Output index of this value in its producer; -1 for inputs and initializers. */
  get producerIndex(): number {
    return this.producerOutput;
  }

  get uses(): readonly Use[] {
    return this.useList;
  }

  get isGraphInput(): boolean {
    return this.graph.inputs.includes(this);
  }

  get isGraphOutput(): boolean {
    return this.graph.outputs.includes(this);
  }

  get isInitializer(): boolean {
    return this.initializer !== undefined;
  }

  /** True for an initializer that no graph input overrides. */
  get isConstant(): boolean {
    return this.initializer !== undefined && !this.isGraphInput;
  }

  /** Points every use of this value at `other`; outputs of its graph and of nested subgraphs are redirected too. */
  replaceAllUsesWith(other: Value): void {
    if (other === this) return;
    for (const use of [...this.useList]) use.node.setInput(use.index, other);
    this.graph.replaceOutput(this, other);
  }

  /** @internal Called by Node when it takes or drops this value as an output. */
  setProducer(node: Node | undefined, index: number): void {
    this.producerNode = node;
    this.producerOutput = node ? index : -1;
  }

  /** @internal Called by Node.setInput. */
  addUse(node: Node, index: number): void {
    this.useList.push({ node, index });
  }

  /** @internal Called by Node.setInput. */
  removeUse(node: Node, index: number): void {
    const at = this.useList.findIndex((use) => use.node === node && use.index === index);
    if (at < 0) throw new Error(`bug: value "${this.name}" has no use at input ${index} of node "${node.name}"`);
    this.useList.splice(at, 1);
  }
}
