import type { Node } from "../ir/node";
import { elementCount, floatParameter } from "./graph-walk";
import type { NoMatch } from "./linear";
import type { MatchedModule } from "./module";

/**
 * Matches the packed QKV projection inside com.microsoft Attention: input 1
 * is a 2-D [hidden, q + k + v] weight and input 2 the matching bias. The
 * module is the Attention node itself, with role attn.qkv by structure.
 */
export function matchPackedAttention(node: Node): MatchedModule | NoMatch {
  if (node.qualifiedOpType !== "com.microsoft::Attention") return { reason: "not com.microsoft::Attention" };
  const weight = floatParameter(node.inputs[1]);
  if (!weight || weight.shape.length !== 2) return { reason: `packed QKV weight ${node.inputs[1]?.name ?? "(missing)"} is not a 2-D float initializer` };
  const [inFeatures, outFeatures] = weight.shape;
  const bias = floatParameter(node.inputs[2]);
  const matchingBias = bias && elementCount(bias.shape) === outFeatures ? bias : undefined;
  return {
    kind: "linear",
    node,
    nodes: [node],
    weight,
    bias: matchingBias,
    input: node.inputs[0],
    output: node.outputs[0],
    layout: "in_out",
    inFeatures,
    outFeatures,
    form: node.qualifiedOpType,
    structuralRole: "attn.qkv",
  };
}
