import { PeftcError } from "../errors";
import { attr } from "../ir/attribute";
import { constantTensor } from "../match/graph-walk";
import type { Graph } from "../ir/graph";
import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import type { GradBuilder } from "../autodiff/grad-builder";
import { isFloatType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import { floatPositions } from "./cache-inputs";

/** Returns the float elements of a constant (an initializer or a Constant node's tensor). */
function constantFloats(value: Value | undefined): Float32Array | undefined {
  const tensor = constantTensor(value);
  if (!tensor || !isFloatType(tensor.dtype)) return undefined;
  return Float32Array.from(tensor.data() as ArrayLike<number>);
}

/** Finds the inverse frequencies of a rotary table: the float constant that positions are multiplied by on the way to Cos. */
function inverseFrequencies(cos: Node): Float32Array | undefined {
  const seen = new Set<Node>();
  const stack: Node[] = [cos];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    if (node.opType === "Mul" || node.opType === "MatMul") {
      for (const input of node.inputs) {
        const values = constantFloats(input);
        if (values && values.length > 1) return values;
      }
    }
    for (const input of node.inputs) if (input?.producer && !input.isConstant) stack.push(input.producer);
  }
  return undefined;
}

/**
 * Replaces the rotary tables of a graph without a cache, computed from
 * positions 0..sequence-1, with tables for per-row `positions`
 * [batch, sequence]. Each Mul that applies a Cos or Sin table to the
 * queries or keys reads a [batch, 1, sequence, rotary_dim] table instead,
 * which broadcasts over the heads. `form` is the discovered rotary form:
 * rotate_half tables repeat the frequencies as cat(f, f), interleaved ones
 * as f0, f0, f1, f1, ...
 */
export function replaceRotaryTables(b: GradBuilder, graph: Graph, positions: Value, form: string): number {
  const tables = graph.nodes.filter((node) => (node.opType === "Cos" || node.opType === "Sin") && node.domain === "");
  let replaced = 0;
  const built = new Map<string, Value>();
  for (const table of tables) {
    const frequencies = inverseFrequencies(table);
    if (!frequencies) {
      throw new PeftcError("E_UNKNOWN_DOMAIN", `KV cache: cannot read the rotary frequencies of "${table.name}": no constant float vector multiplies the positions before it. Re-export the model without cache from Hugging Face transformers, or with a cache.`, { node: table.name });
    }
    const dtype = b.dtype(table.outputs[0]);
    const key = `${table.opType}:${frequencies.join(",")}`;
    let value = built.get(key);
    if (!value) {
      const inverse = b.graph.addInitializer(Tensor.fromArray("rotary_inverse_frequencies", dtype, [frequencies.length], frequencies));
      const angles = b.op("Mul", [b.unsqueeze(floatPositions(b, positions, dtype), [-1]), inverse]);
      const repeated =
        form === "rotate_half"
          ? b.op("Concat", [angles, angles], [attr.int("axis", -1)])
          : b.op("Reshape", [b.op("Concat", [b.unsqueeze(angles, [-1]), b.unsqueeze(angles, [-1])], [attr.int("axis", -1)]), b.ints([0, 0, -1])]);
      value = b.unsqueeze(b.op(table.opType, [repeated]), [1]);
      built.set(key, value);
    }
    for (const use of [...table.outputs[0].uses]) {
      if (use.node.opType !== "Mul") {
        throw new PeftcError("E_UNKNOWN_DOMAIN", `KV cache: the rotary table "${table.name}" feeds ${use.node.opType} "${use.node.name}" instead of the Mul that applies it to queries and keys, a layout this rewrite does not know.`, { node: use.node.name });
      }
      use.node.setInput(use.index, value);
      replaced++;
    }
  }
  return replaced;
}
