import type { ManifestParameter } from "../compiler/emit/manifest";
import { PeftcError } from "../compiler/errors";

/** Optimizer state names end in a suffix on the parameter's name (Adam's `.m` and `.v`, SGD's `.momentum`) and share its shape. */
const STATE_SUFFIX = /\.(m|v|momentum)$/;

/**
 * Checks parameter and optimizer state tensors against the shapes the
 * manifest lists, so a file written for another artifact folder (another
 * rank, another model) fails naming the tensor instead of deep inside
 * onnxruntime. Names the manifest does not list are left to the caller.
 */
export function checkParameterShapes(parameters: readonly ManifestParameter[], tensors: Readonly<Record<string, { readonly dims: readonly number[] }>>, file: string, code: "E_CHECKPOINT" | "E_GENERATE"): void {
  const shapes = new Map(parameters.map((parameter) => [parameter.name, parameter.shape]));
  for (const [name, tensor] of Object.entries(tensors)) {
    const shape = shapes.get(name) ?? shapes.get(name.replace(STATE_SUFFIX, ""));
    if (!shape || tensor.dims.join() === shape.join()) continue;
    throw new PeftcError(
      code,
      `${file}: tensor "${name}" has shape [${tensor.dims.join(", ")}], but the artifact folder's is [${shape.join(", ")}]. The file was written for another artifact folder (another rank or model); pass one written for this folder.`,
      { file, tensor: name },
    );
  }
}
