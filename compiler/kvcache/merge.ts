import { PeftcError } from "../errors";
import type { Model } from "../ir/model";
import { mergeLora } from "../methods/lora-merge";
import type { LoraRecord, TrainableParameter } from "../methods/parameters";

/**
 * Folds LoRA updates into the base weights of `model` (which has no LoRA
 * branches): W + scale · B·A in float32, in the weight's own layout, a fused
 * projection's parts each on their own rows. Existing tensors that trained
 * (biases, `train` modules) take their trained values. Reads each merged
 * weight once; the result is written back in the weight's type. Returns
 * the merged target paths.
 */
export function mergeIntoWeights(model: Model, records: readonly LoraRecord[], parameters: readonly TrainableParameter[]): string[] {
  const values = new Map(parameters.map((parameter) => [parameter.name, parameter]));
  const merged = new Map<string, Float32Array>();
  for (const record of records) {
    const weight = model.graph.initializers.get(record.weight)?.initializer;
    if (!weight) throw new PeftcError("E_IR_INVARIANT", `merge: the base weight "${record.weight}" of ${record.path} is not an initializer of the model.`, { value: record.weight });
    const current = merged.get(record.weight) ?? Float32Array.from(weight.data() as ArrayLike<number>);
    const a = Float32Array.from(values.get(record.a)!.tensor.data() as ArrayLike<number>);
    const b = Float32Array.from(values.get(record.b)!.tensor.data() as ArrayLike<number>);
    merged.set(record.weight, mergeLora(current, record, a, b, weight.size / record.inFeatures));
  }
  for (const [name, data] of merged) model.graph.initializers.get(name)!.initializer!.rebind({ kind: "array", array: data });
  for (const parameter of parameters) {
    if (parameter.created) continue;
    const value = model.graph.initializers.get(parameter.name);
    if (value?.initializer) value.initializer.rebind({ kind: "array", array: Float32Array.from(parameter.tensor.data() as ArrayLike<number>) });
  }
  return records.map((record) => record.path);
}
