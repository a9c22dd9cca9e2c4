import { type Attribute } from "../ir/attribute";
import type { Graph, Position } from "../ir/graph";
import type { Node } from "../ir/node";
import { tensorType } from "../ir/types";
import type { Value } from "../ir/value";
import { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";

/**
 * Adds the nodes of one method's rewrite at a place of the graph, each after
 * the one before, so the node list stays in topological order. LoRA
 * branches, bottleneck adapters and (IA)3 scaling vectors use it.
 */
export class NodeChain {
  private last: Node | undefined;
  private readonly added = new Set<Node>();

  constructor(
    protected readonly graph: Graph,
    /** Position of the first node. */
    private readonly start: Position,
    /** Name stem of the nodes and constants: `/<stem>/<label>`. */
    protected readonly stem: string,
  ) {}

  private get position(): Position {
    return this.last ? { after: this.last } : this.start;
  }

  /** Adds a node named `/<stem>/<label>` (label defaults to the op type) and returns its output. */
  add(opType: string, inputs: Value[], attributes: Attribute[] = [], label = opType): Value {
    return this.addNode(opType, inputs, attributes, label, 1).outputs[0];
  }

  /** Adds a node with `outputs` outputs, such as Dropout with its mask, and returns it. */
  protected addNode(opType: string, inputs: Value[], attributes: Attribute[], label: string, outputs: number): Node {
    const node = this.graph.addNode({ opType, name: `/${this.stem}/${label}`, inputs, attributes, outputs }, this.position);
    this.last = node;
    this.added.add(node);
    return node;
  }

  /** Adds a float constant initializer named `<stem>.<label>`. */
  constant(label: string, dtype: DataType, shape: number[], values: Float32Array): Value {
    return this.graph.addInitializer(Tensor.fromArray(`${this.stem}.${label}`, dtype, shape, values));
  }

  scalar(label: string, value: number, dtype: DataType): Value {
    return this.constant(label, dtype, [], Float32Array.of(value));
  }

  /** Adds a 1-D int64 constant, such as a Reshape target. */
  ints(label: string, values: readonly number[]): Value {
    return this.graph.addInitializer(Tensor.fromArray(`${this.stem}.${label}`, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  }

  /**
   * Moves every reader of `value` except the chain's own nodes to
   * `replacement`, and keeps a graph output's name on the value the graph
   * now returns.
   */
  redirect(value: Value, replacement: Value): void {
    for (const use of [...value.uses]) if (!this.added.has(use.node)) use.node.setInput(use.index, replacement);
    if (this.graph.isReturned(value)) {
      this.graph.replaceOutput(value, replacement);
      this.graph.swapNames(value, replacement);
    }
    if (!replacement.type && value.type?.kind === "tensor") replacement.type = tensorType(value.type.elemType, value.type.shape);
  }
}
