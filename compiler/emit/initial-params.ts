import { PeftcError } from "../errors";
import type { TrainableParameter } from "../methods/parameters";
import { elementTypeName } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import { readSafetensors } from "./safetensors";

/** Suffixes of optimizer state in a training checkpoint, which a params file may carry beside the trainable tensors. */
const STATE_SUFFIXES = [".m", ".v", ".momentum"];

/**
 * Replaces the initial values of `parameters` with those of a params file
 * (params.safetensors from `peftc train`, or a checkpoint), so that
 * params.safetensors and every value folded into infer.onnx (merged LoRA
 * and (IA)3, folded prefixes) start from trained tensors. Every trainable
 * tensor must be in the file with its shape and type. Optimizer state is
 * ignored. Any other tensor is an error, because it means the file was
 * written for another spec or model.
 */
export function applyParamsFile(parameters: TrainableParameter[], file: string): void {
  const { tensors } = readSafetensors(file);
  const byName = new Map(parameters.map((parameter) => [parameter.name, parameter]));
  const missing = parameters.filter((parameter) => !tensors.has(parameter.name)).map((parameter) => parameter.name);
  if (missing.length > 0) {
    throw new PeftcError("E_ARTIFACT", `${file} has no tensor ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ""}, which the spec trains. Pass the params.safetensors or a checkpoint that \`peftc train\` wrote for this model and spec.`, { file });
  }
  for (const [name, tensor] of tensors) {
    const parameter = byName.get(name);
    if (!parameter) {
      if (STATE_SUFFIXES.some((suffix) => name.endsWith(suffix) && byName.has(name.slice(0, -suffix.length)))) continue;
      throw new PeftcError("E_ARTIFACT", `${file} has a tensor "${name}" that the spec does not train. Pass the params file written for this model and spec.`, { file, tensor: name });
    }
    if (tensor.dims.join() !== parameter.shape.join() || elementTypeName(tensor.dtype) !== parameter.dtype) {
      throw new PeftcError("E_ARTIFACT", `${file}: tensor "${name}" is ${elementTypeName(tensor.dtype)} [${tensor.dims.join(", ")}], but the spec trains it as ${parameter.dtype} [${parameter.shape.join(", ")}]. Pass the params file written for this model and spec.`, { file, tensor: name });
    }
    parameter.tensor = Tensor.fromArray(name, tensor.dtype, [...tensor.dims], Float32Array.from(tensor.data() as ArrayLike<number>));
    parameter.init = "params file";
  }
}
