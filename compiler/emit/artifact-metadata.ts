import { PeftcError } from "../errors";
import type { Model } from "../ir/model";

/** Model metadata key that marks a graph written by `peftc compile`; its value is the graph kind (eval, grad, train, apply). */
export const ARTIFACT_METADATA_KEY = "peftc.artifact";

/** Marks `model` as peftc's `kind` graph, replacing an earlier mark, so a later compile can tell it from a base model. */
export function markArtifactGraph(model: Model, kind: string): void {
  model.metadataProps = [...model.metadataProps.filter((entry) => entry.key !== ARTIFACT_METADATA_KEY), { key: ARTIFACT_METADATA_KEY, value: kind }];
}

/**
 * Rejects a graph that peftc wrote as a base model: its LoRA tensors and
 * optimizer state are graph inputs without values in the new artifact
 * folder, so the result could not run from its own params.
 */
export function rejectArtifactGraph(model: Model, file: string): void {
  const kind = model.metadataProps.find((entry) => entry.key === ARTIFACT_METADATA_KEY)?.value;
  if (kind === undefined) return;
  throw new PeftcError(
    "E_ONNX_INVALID",
    `${file} is the ${kind} graph of an earlier peftc compile (metadata "${ARTIFACT_METADATA_KEY}"), not a base model. Its earlier trainable tensors are graph inputs that a new compile cannot fill, so compile the original base model instead.`,
    { file },
  );
}
