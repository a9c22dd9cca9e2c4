import { PeftcError } from "../errors";
import type { Attribute } from "../ir/attribute";
import type { Node } from "../ir/node";
import { type Dim, tensorType } from "../ir/types";
import type { Value } from "../ir/value";
import { DataType, isFloatType } from "../onnx/dtype";
import type { GradBuilder } from "./grad-builder";
import type { GradientContext, GradientRule } from "./rule";
import { gradientRule } from "./rules";
import { GradientPartials } from "./partials";

/**
 * Emits the forward nodes of an op's decomposition into default-domain ops.
 * Every output gets the element type and shape the caller states, because
 * the gradient rules that later run over these nodes read ranks and static
 * dims from their values, and shape inference does not run mid-backward.
 */
export class Expansion {
  /** The decomposition's nodes, in the order they were added (a topological order). */
  readonly nodes: Node[] = [];

  constructor(readonly b: GradBuilder) {}

  /** Adds a node with one output of type `elemType` and shape `dims` (undefined: rank unknown). */
  op(opType: string, inputs: readonly (Value | undefined)[], attributes: readonly Attribute[], elemType: DataType, dims: readonly Dim[] | undefined): Value {
    return this.node(opType, inputs, attributes, [[elemType, dims]])[0];
  }

  /** Adds a node with one output per entry of `outputTypes`. */
  node(opType: string, inputs: readonly (Value | undefined)[], attributes: readonly Attribute[], outputTypes: readonly [DataType, readonly Dim[] | undefined][]): Value[] {
    const outputs = this.b.node(opType, inputs, outputTypes.length, attributes);
    outputs.forEach((output, index) => {
      const [elemType, dims] = outputTypes[index];
      output.type = tensorType(elemType, dims ? [...dims] : undefined);
    });
    this.nodes.push(outputs[0].producer!);
    return outputs;
  }
}

/**
 * Builds a gradient rule that differentiates an op through its
 * decomposition. `expand` recomputes the op's outputs from its forward
 * inputs in ops that have rules, returning one value per op output
 * (undefined for an output it does not model). A reverse pass over just
 * those nodes then carries the output gradients back to the op's inputs.
 * `expand` runs only when a gradient is needed, and it may throw for
 * attribute or input forms it does not model.
 */
export function differentiateByExpansion(expand: (expansion: Expansion, context: GradientContext) => (Value | undefined)[]): GradientRule {
  return (context) => {
    const { node, b, outputGrads } = context;
    const expansion = new Expansion(b);
    const outputs = expand(expansion, context);
    const seeds = new Map<Value, Value>();
    outputGrads.forEach((grad, index) => {
      if (!grad) return;
      const output = outputs[index];
      if (!output) {
        throw new PeftcError(
          "E_UNKNOWN_DOMAIN",
          `no gradient rule for output ${index} ("${node.outputs[index].name}") of ${node.qualifiedOpType} (node "${node.name}"): its decomposition does not compute that output. Keep the loss from reading it.`,
          { node: node.name, op: node.qualifiedOpType },
        );
      }
      seeds.set(output, grad);
    });
    const wrt = node.inputs.map((input, index) => (input && context.needsGrad(index) ? input : undefined));
    const grads = reversePass(b, expansion.nodes, seeds, new Set(wrt.filter((input): input is Value => input !== undefined)));
    return wrt.map((input) => (input ? grads.get(input) : undefined));
  };
}

/**
 * The reverse pass of buildBackward, restricted to `nodes` (in topological
 * order): returns the summed gradient of each `wrt` value the seeds depend
 * on. A node without a rule is a bug in the decomposition that emitted it.
 */
function reversePass(b: GradBuilder, nodes: readonly Node[], seeds: ReadonlyMap<Value, Value>, wrt: ReadonlySet<Value>): Map<Value, Value> {
  const reached = new Set<Value>(wrt);
  for (const node of nodes) {
    if (node.inputs.some((input) => input !== undefined && reached.has(input))) for (const output of node.outputs) if (isFloat(output)) reached.add(output);
  }

  const partials = new GradientPartials(b);
  const addPartial = (value: Value, grad: Value): void => partials.add(value, grad);
  for (const [value, grad] of seeds) addPartial(value, grad);
  const total = (value: Value): Value | undefined => partials.total(value);

  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!node.inputs.some((input) => input !== undefined && reached.has(input))) continue;
    const outputGrads = node.outputs.map((output) => total(output));
    if (outputGrads.every((grad) => grad === undefined)) continue;
    const rule = gradientRule(node);
    if (!rule) throw new PeftcError("E_IR_INVARIANT", `decomposition node "${node.name}" is a ${node.qualifiedOpType}, which has no gradient rule. Please report this bug.`, { node: node.name });
    const needsGrad = (index: number): boolean => {
      const input = node.inputs[index];
      return input !== undefined && reached.has(input) && isFloat(input);
    };
    const inputGrads = rule({ node, b, outputGrads, needsGrad });
    node.inputs.forEach((input, index) => {
      const grad = inputGrads[index];
      if (grad && input && needsGrad(index)) addPartial(input, grad);
    });
  }

  const grads = new Map<Value, Value>();
  for (const value of wrt) {
    const grad = total(value);
    if (grad) grads.set(value, grad);
  }
  return grads;
}

function isFloat(value: Value): boolean {
  if (value.type?.kind === "tensor") return isFloatType(value.type.elemType);
  if (value.initializer) return isFloatType(value.initializer.dtype);
  return true;
}
