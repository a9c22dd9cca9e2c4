import { Value } from "../../ir/value";
import { Scope } from "../model-builder";
import { gather } from "../ops";
import { WeightInit, init } from "../weights";

export interface EmbeddingOptions {
  count: number;
  dim: number;
  /** Default: normal with std 0.02. */
  weightInit?: WeightInit;
}

/** Looks up rows of a [count, dim] table `<module>.weight` with Gather, as nn.Embedding exports. */
export function embedding(scope: Scope, indices: Value, options: EmbeddingOptions): { output: Value; weight: Value } {
  const weight = scope.parameter("weight", [options.count, options.dim], options.weightInit ?? init.normal(0.02));
  return { output: gather(scope, weight, indices, 0), weight };
}
