import type { Model } from "../ir/model";
import { forEachGraph } from "../ir/traverse";
import { isFloatType } from "../onnx/dtype";
import type { TrainableParameter } from "../methods/parameters";
import type { TrainableSummary } from "./manifest";

/**
 * Counts the parameters of a model before any method changes it: every
 * float initializer element of every graph, once, as `peftc inspect` counts
 * them. A tied embedding and head share one initializer and count once.
 * Reads shapes only, never weight data.
 */
export function countBaseParameters(model: Model): number {
  let count = 0;
  forEachGraph(model.graph, (graph) => {
    for (const value of graph.initializers.values()) {
      const tensor = value.initializer!;
      if (isFloatType(tensor.dtype)) count += tensor.size;
    }
  });
  return count;
}

/**
 * Builds PEFT's `print_trainable_parameters` summary: trainable elements,
 * and all parameters as the base count plus the new tensors. Constants the
 * methods add (LoRA scales, zero blocks) are not parameters and are left out.
 */
export function trainableSummary(baseCount: number, parameters: readonly TrainableParameter[]): TrainableSummary {
  const size = (parameter: TrainableParameter): number => parameter.shape.reduce((product, dim) => product * dim, 1);
  const trainable = parameters.reduce((sum, parameter) => sum + size(parameter), 0);
  const added = parameters.filter((parameter) => parameter.created).reduce((sum, parameter) => sum + size(parameter), 0);
  const all = baseCount + added;
  const percent = all === 0 ? 0 : (100 * trainable) / all;
  // PEFT formats counts with thousands separators and the percentage with four decimals.
  const line = `trainable params: ${trainable.toLocaleString("en-US")} || all params: ${all.toLocaleString("en-US")} || trainable%: ${percent.toFixed(4)}`;
  return { trainable, all, percent, line };
}
