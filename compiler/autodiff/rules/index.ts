import type { Node } from "../../ir/node";
import type { GradientRule } from "../rule";
import { add, div, mul, neg, pow, sub } from "./elementwise";
import { gemm, matMul } from "./matmul";
import { reduceMean, reduceSum } from "./reduce";

/**
 * Every gradient rule, by op (`Op` in the default domain, `domain::Op`
 * elsewhere). One rule may serve an op family. An op missing here stops
 * the backward pass with an error naming it.
 */
const RULES: ReadonlyMap<string, GradientRule> = new Map<string, GradientRule>([
  ["Add", add],
  ["Sub", sub],
  ["Mul", mul],
  ["Div", div],
  ["Neg", neg],
  ["Pow", pow],
  ["MatMul", matMul],
  ["Gemm", gemm],
  ["ReduceSum", reduceSum],
  ["ReduceMean", reduceMean],
]);

/** Returns the gradient rule of a node's op, or undefined when there is none. */
export function gradientRule(node: Node): GradientRule | undefined {
  return RULES.get(node.qualifiedOpType);
}

/** Ops that have a gradient rule, for error messages and the coverage test. */
export function differentiableOps(): string[] {
  return [...RULES.keys()].sort();
}
