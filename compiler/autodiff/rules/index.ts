import type { Node } from "../../ir/node";
import type { GradientRule } from "../rule";
import { add, div, mul, neg, pow, sub } from "./elementwise";
import { gemm, matMul } from "./matmul";
import { fusedMatMul } from "./fused-matmul";
import { scatterND } from "./scatter";
import { cos, sin } from "./trigonometric";
import { concat, split } from "./concat";
import { gather, gatherElements } from "./gather";
import { pad, slice } from "./slice";
import { expand, reshapeBack, tile, transpose } from "./shape";
import { reduceMean, reduceSum } from "./reduce";
import { biasGelu, fastGelu, gelu, leakyRelu, microsoftGelu, relu, sigmoid, softplus, tanh } from "./activation";
import { dropout } from "./dropout";
import { attention, groupQueryAttention, multiHeadAttention } from "./attention";
import { layerNormalization, simplifiedLayerNormalization, skipLayerNormalization, skipSimplifiedLayerNormalization } from "./normalization";
import { logSoftmax, softmax } from "./softmax";
import { abs, cast, erf, exp, identity, log, reciprocal, sqrt } from "./unary";
import { extremum, mean, sum } from "./variadic";
import { where } from "./where";

/**
 * Every gradient rule, by op (`Op` in the default domain, `domain::Op`
 * elsewhere). One rule may serve an op family. An op missing here stops
 * the backward pass with an error naming it.
 */
const RULE_ENTRIES: [string, GradientRule][] = [
  ["Reshape", reshapeBack],
  ["Flatten", reshapeBack],
  ["Squeeze", reshapeBack],
  ["Unsqueeze", reshapeBack],
  ["Transpose", transpose],
  ["Expand", expand],
  ["Tile", tile],
  ["Concat", concat],
  ["Split", split],
  ["Slice", slice],
  ["Pad", pad],
  ["Gather", gather],
  ["GatherElements", gatherElements],
  ["Add", add],
  ["Sub", sub],
  ["Mul", mul],
  ["Div", div],
  ["Neg", neg],
  ["Pow", pow],
  ["MatMul", matMul],
  ["Gemm", gemm],
  ["com.microsoft::FusedMatMul", fusedMatMul],
  ["ScatterND", scatterND],
  ["Sin", sin],
  ["Cos", cos],
  ["com.microsoft::BiasGelu", biasGelu],
  ["ReduceSum", reduceSum],
  ["ReduceMean", reduceMean],
  ["Sqrt", sqrt],
  ["Reciprocal", reciprocal],
  ["Exp", exp],
  ["Log", log],
  ["Abs", abs],
  ["Erf", erf],
  ["Identity", identity],
  ["Cast", cast],
  ["Tanh", tanh],
  ["Sigmoid", sigmoid],
  ["Relu", relu],
  ["LeakyRelu", leakyRelu],
  ["Softplus", softplus],
  ["Gelu", gelu],
  ["com.microsoft::Gelu", microsoftGelu],
  ["com.microsoft::FastGelu", fastGelu],
  ["Softmax", softmax],
  ["LogSoftmax", logSoftmax],
  ["Dropout", dropout],
  ["Where", where],
  ["Sum", sum],
  ["Mean", mean],
  ["Max", extremum],
  ["Min", extremum],
  ["LayerNormalization", layerNormalization],
  ["SimplifiedLayerNormalization", simplifiedLayerNormalization],
  ["com.microsoft::SkipLayerNormalization", skipLayerNormalization],
  ["com.microsoft::SkipSimplifiedLayerNormalization", skipSimplifiedLayerNormalization],
  ["com.microsoft::Attention", attention],
  ["com.microsoft::MultiHeadAttention", multiHeadAttention],
  ["com.microsoft::GroupQueryAttention", groupQueryAttention],
];

const RULES: ReadonlyMap<string, GradientRule> = new Map(RULE_ENTRIES);
if (RULES.size !== RULE_ENTRIES.length) {
  const seen = new Set<string>();
  const duplicate = RULE_ENTRIES.find(([op]) => seen.has(op) || !seen.add(op));
  throw new Error(`gradient rule table: ${duplicate?.[0]} is registered twice.`);
}

/** Returns the gradient rule of a node's op, or undefined when there is none. */
export function gradientRule(node: Node): GradientRule | undefined {
  return RULES.get(node.qualifiedOpType);
}

/** Ops that have a gradient rule, for error messages and the coverage test. */
export function differentiableOps(): string[] {
  return [...RULES.keys()].sort();
}
