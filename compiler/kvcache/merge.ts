import { PeftcError } from "../errors";
import type { Model } from "../ir/model";
import { mergeLora } from "../methods/lora-merge";
import type { LoraRecord, TrainableParameter } from "../methods/parameters";
import { mergeIa3Bias, mergeIa3Weight } from "../methods/ia3-merge";
import type { Ia3Record } from "../methods/ia3-record";

/**
 * Folds LoRA updates into the base weights of `model` (which has no LoRA
 * branches): W + scale · B·A in float32, in the weight's own layout, a fused
 * projection's parts each on their own rows. Existing tensors that trained
 * (biases, `train` modules) take their trained values. Reads each merged
 * weight once; the result is written back in the weight's type. (IA)3
 * vectors are folded last, into those results: an output vector scales the
 * weight's output rows and the bias, an input vector its input columns.
 * Returns the merged target paths.
 */
export function mergeIntoWeights(model: Model, records: readonly LoraRecord[], parameters: readonly TrainableParameter[], ia3: readonly Ia3Record[] = []): string[] {
  const values = new Map(parameters.map((parameter) => [parameter.name, parameter]));
  const merged = new Map<string, Float32Array>();
  for (const record of records) {
    if (record.gate !== null) {
      throw new PeftcError("E_SPEC_MODEL", `inference.mergeAdapters cannot fold the LoRA of ${record.path}: a learned gate scales it per token, so it depends on the input. Set mergeAdapters to false, or train without gate.`, { module: record.path });
    }
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
  for (const record of ia3) mergeIa3(model, record, values);
  return [...records.map((record) => record.path), ...ia3.map((record) => record.path)];
}

function mergeIa3(model: Model, record: Ia3Record, values: ReadonlyMap<string, TrainableParameter>): void {
  const vector = values.get(record.vector);
  if (!vector) throw new PeftcError("E_IR_INVARIANT", `merge: the values of the (IA)3 vector "${record.vector}" of ${record.path} are missing.`, { value: record.vector });
  const l = Float32Array.from(vector.tensor.data() as ArrayLike<number>);
  const initializerOf = (name: string) => {
    const tensor = model.graph.initializers.get(name)?.initializer;
    if (!tensor) throw new PeftcError("E_IR_INVARIANT", `merge: "${name}" of ${record.path} is not an initializer of the model.`, { value: name });
    return tensor;
  };
  const readers = new Set(model.graph.initializers.get(record.weight)?.uses.map((use) => use.node));
  if (readers.size > 1) {
    throw new PeftcError(
      "E_SPEC_MODEL",
      `inference.mergeAdapters cannot fold the (IA)3 vector of ${record.path}: its weight "${record.weight}" is read by ${readers.size} nodes (such as a tied embedding and head), so scaling it would change the other readers too. Set mergeAdapters to false, or leave ${record.path} out of the ia3 targets.`,
      { module: record.path },
    );
  }
  const weight = initializerOf(record.weight);
  weight.rebind({ kind: "array", array: mergeIa3Weight(Float32Array.from(weight.data() as ArrayLike<number>), record, l) });
  if (record.bias !== null && !record.feedforward) {
    const bias = initializerOf(record.bias);
    bias.rebind({ kind: "array", array: mergeIa3Bias(Float32Array.from(bias.data() as ArrayLike<number>), record, l) });
  }
}
