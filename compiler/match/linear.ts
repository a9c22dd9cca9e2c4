import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { elementCount, floatParameter, otherInput, soleUse } from "./graph-walk";
import type { MatchedModule, Parameter } from "./module";

/** A failed match: why the node is not a linear layer. */
export interface NoMatch {
  reason: string;
}

/** A weight as the layer reads it: the initializer and how many transposes lie between it and the op. */
interface WeightRead {
  parameter: Parameter;
  transposes: number;
  nodes: Node[];
}

/** Follows `value` back through at most one 2-D Transpose to a 2-D float initializer. */
function readWeight(value: Value | undefined): WeightRead | undefined {
  const direct = floatParameter(value);
  if (direct) return direct.shape.length === 2 ? { parameter: direct, transposes: 0, nodes: [] } : undefined;
  const transpose = value?.producer;
  if (!transpose || transpose.opType !== "Transpose" || transpose.domain !== "") return undefined;
  const perm = transpose.getInts("perm");
  if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return undefined;
  const stored = floatParameter(transpose.inputs[0]);
  if (!stored || stored.shape.length !== 2) return undefined;
  return { parameter: stored, transposes: 1, nodes: [transpose] };
}

/** Returns `value` as a bias: a float initializer with `features` elements laid out along the last axis. */
function readBias(value: Value | undefined, features: number): Parameter | undefined {
  const parameter = floatParameter(value);
  if (!parameter || parameter.shape.length === 0) return undefined;
  const last = parameter.shape[parameter.shape.length - 1];
  return last === features && elementCount(parameter.shape) === features ? parameter : undefined;
}

function isReshape(node: Node | undefined): node is Node {
  return node !== undefined && node.opType === "Reshape" && node.domain === "";
}

/** Returns the activation input, seen through the Reshape to 2-D that old exporters put before a Gemm or MatMul. */
function unwrapInput(value: Value): Value {
  const producer = value.producer;
  if (isReshape(producer) && producer.outputs[0].uses.length === 1 && producer.inputs[0]) return producer.inputs[0];
  return value;
}

/** Extends the layer past a Reshape back to 3-D and a bias Add that follow it, when the layer is their only reader. */
function extendOutput(module: MatchedModule, outFeatures: number): void {
  const reshape = soleUse(module.output);
  if (isReshape(reshape) && reshape.inputs[0] === module.output) {
    module.nodes.push(reshape);
    module.output = reshape.outputs[0];
  }
  if (module.bias) return;
  const add = soleUse(module.output);
  if (!add || add.opType !== "Add" || add.domain !== "") return;
  const bias = readBias(otherInput(add, module.output), outFeatures);
  if (!bias) return;
  module.bias = bias;
  module.nodes.push(add);
  module.output = add.outputs[0];
}

/**
 * Matches a MatMul or Gemm whose second operand is a 2-D float initializer,
 * read directly ([in, out], as folded exports and GPT-2's Conv1D store it) or
 * through a Transpose or Gemm's transB (torch's nn.Linear [out, in]).
 */
export function matchLinear(node: Node): MatchedModule | NoMatch {
  if (node.domain !== "" || (node.opType !== "MatMul" && node.opType !== "Gemm")) return { reason: `${node.opType} is not MatMul or Gemm` };
  const activation = node.inputs[0];
  if (!activation || activation.isConstant) return { reason: "the first operand is a constant, not an activation" };
  if (node.opType === "Gemm" && node.getInt("transA", 0) !== 0) return { reason: "Gemm with transA=1 reads its activation transposed" };
  const weight = readWeight(node.inputs[1]);
  if (!weight) return { reason: `the second operand "${node.inputs[1]?.name ?? ""}" is not a 2-D float initializer` };

  const transposes = weight.transposes + (node.opType === "Gemm" ? node.getInt("transB", 0) : 0);
  if (transposes > 1) return { reason: "the weight is transposed twice" };
  const [rows, columns] = weight.parameter.shape;
  const [inFeatures, outFeatures] = transposes === 1 ? [columns, rows] : [rows, columns];
  const module: MatchedModule = {
    kind: "linear",
    node,
    nodes: [...weight.nodes, node],
    weight: weight.parameter,
    input: unwrapInput(activation),
    output: node.outputs[0],
    layout: transposes === 1 ? "out_in" : "in_out",
    inFeatures,
    outFeatures,
    form: node.opType,
  };
  if (node.opType === "Gemm" && node.inputs[2]) {
    const bias = readBias(node.inputs[2], outFeatures);
    if (!bias) return { reason: `Gemm bias "${node.inputs[2].name}" is not a float initializer of ${outFeatures} elements` };
    module.bias = bias;
  }
  extendOutput(module, outFeatures);
  return module;
}

export function isMatch<T>(result: T | NoMatch): result is T {
  return !("reason" in (result as object));
}
