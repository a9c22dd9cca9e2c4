import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import { floatParameter, otherInput } from "./graph-walk";
import type { NoMatch } from "./linear";
import type { MatchedModule, Parameter } from "./module";

/** Fused norm ops: where their weight (scale) and bias inputs sit. */
const FUSED_NORMS: Record<string, { weight: number; bias?: number; form: string }> = {
  "LayerNormalization": { weight: 1, bias: 2, form: "LayerNormalization" },
  "RMSNormalization": { weight: 1, form: "RMSNormalization" },
  "SimplifiedLayerNormalization": { weight: 1, form: "SimplifiedLayerNormalization" },
  "com.microsoft::LayerNormalization": { weight: 1, bias: 2, form: "LayerNormalization" },
  "com.microsoft::SimplifiedLayerNormalization": { weight: 1, form: "SimplifiedLayerNormalization" },
  "com.microsoft::SkipLayerNormalization": { weight: 2, bias: 3, form: "SkipLayerNormalization" },
  "com.microsoft::SkipSimplifiedLayerNormalization": { weight: 2, form: "SkipSimplifiedLayerNormalization" },
  "com.microsoft::EmbedLayerNormalization": { weight: 5, bias: 6, form: "EmbedLayerNormalization" },
};

function vectorParameter(value: Value | undefined): Parameter | undefined {
  const parameter = floatParameter(value);
  return parameter && parameter.shape.length === 1 && parameter.shape[0] > 1 ? parameter : undefined;
}

/** Matches a norm op with its scale and optional bias initializers. */
export function matchFusedNorm(node: Node): MatchedModule | NoMatch {
  const key = node.domain === "" || node.domain === "ai.onnx" ? node.opType : node.qualifiedOpType;
  const slots = FUSED_NORMS[key];
  if (!slots) return { reason: `${node.qualifiedOpType} is not a norm op` };
  const weight = floatParameter(node.inputs[slots.weight]);
  const bias = slots.bias === undefined ? undefined : floatParameter(node.inputs[slots.bias]);
  return { kind: "norm", node, nodes: [node], weight, bias, input: node.inputs[0], output: node.outputs[0], form: slots.form };
}

function producedBy(value: Value | undefined, opType: string): Node | undefined {
  const producer = value?.producer;
  return producer && producer.opType === opType && producer.domain === "" ? producer : undefined;
}

/** Returns the x in `ReduceMean(Pow(x, 2))` or `ReduceMean(Mul(x, x))`. */
function squaredInput(reduce: Node): Value | undefined {
  const pow = producedBy(reduce.inputs[0], "Pow");
  if (pow) return pow.inputs[0];
  const mul = producedBy(reduce.inputs[0], "Mul");
  return mul && mul.inputs[0] === mul.inputs[1] ? mul.inputs[0] : undefined;
}

/**
 * Nodes from the ReduceMean of the variance to x, for `x - ReduceMean(x)`
 * (LayerNorm) or plain x (RMSNorm). A Cast between the Sub and the square,
 * as torch 1.6 exports it, is passed through.
 */
function centring(x: Value): { isLayerNorm: boolean; input: Value; nodes: Node[] } {
  const cast = producedBy(x, "Cast");
  const sub = producedBy(cast ? cast.inputs[0] : x, "Sub");
  const mean = sub ? producedBy(sub.inputs[1], "ReduceMean") : undefined;
  if (sub && mean && mean.inputs[0] === sub.inputs[0]) return { isLayerNorm: true, input: sub.inputs[0]!, nodes: cast ? [mean, sub, cast] : [mean, sub] };
  return { isLayerNorm: false, input: x, nodes: [] };
}

/**
 * Finds the scale Mul and the shift Add (or Sub, as TensorFlow writes
 * `beta - mean * scale`) with 1-D float initializers within four nodes after
 * the Sqrt. The walk stops at MatMul and Gemm so it never leaves the norm.
 */
function affineAfter(sqrt: Node, isLayerNorm: boolean): { weight?: Parameter; bias?: Parameter; nodes: Node[]; output: Value } {
  const found: { weight?: Parameter; bias?: Parameter; nodes: Node[]; output: Value } = { nodes: [], output: sqrt.outputs[0] };
  let frontier: Value[] = [sqrt.outputs[0]];
  for (let depth = 0; depth < 4 && frontier.length > 0; depth++) {
    const next: Value[] = [];
    for (const value of frontier) {
      for (const { node } of value.uses) {
        if (found.nodes.includes(node) || node.opType === "MatMul" || node.opType === "Gemm") continue;
        found.nodes.push(node);
        found.output = node.outputs[0];
        const constant = vectorParameter(otherInput(node, value));
        if (constant && node.opType === "Mul" && !found.weight) found.weight = constant;
        else if (constant && isLayerNorm && (node.opType === "Add" || node.opType === "Sub") && !found.bias) found.bias = constant;
        next.push(...node.outputs);
      }
    }
    if (found.weight && (found.bias || !isLayerNorm)) break;
    frontier = next;
  }
  return found;
}

/**
 * Matches a decomposed LayerNorm or RMSNorm anchored at its Sqrt:
 * `Sqrt(Add(ReduceMean(Pow(y, 2)), eps))`, where y is `x - ReduceMean(x)`
 * for LayerNorm and x itself for RMSNorm. The division by the Sqrt (Div, or
 * Reciprocal then Mul) and the scale and shift follow within a few nodes.
 */
export function matchDecomposedNorm(sqrt: Node): MatchedModule | NoMatch {
  if (sqrt.opType !== "Sqrt" || sqrt.domain !== "") return { reason: `${sqrt.opType} is not Sqrt` };
  const addEps = producedBy(sqrt.inputs[0], "Add");
  const variance = addEps ? producedBy(addEps.inputs[0], "ReduceMean") ?? producedBy(addEps.inputs[1], "ReduceMean") : undefined;
  if (!addEps || !variance) return { reason: "the Sqrt does not read ReduceMean(...) + epsilon" };
  const squared = squaredInput(variance);
  if (!squared) return { reason: "the ReduceMean does not average a square" };
  const { isLayerNorm, input, nodes } = centring(squared);
  const affine = affineAfter(sqrt, isLayerNorm);
  const square = variance.inputs[0]!.producer!;
  return {
    kind: "norm",
    node: sqrt,
    nodes: [...nodes, square, variance, addEps, sqrt, ...affine.nodes],
    weight: affine.weight,
    bias: affine.bias,
    input,
    output: affine.output,
    form: isLayerNorm ? "decomposed LayerNorm" : "decomposed RMSNorm",
  };
}
