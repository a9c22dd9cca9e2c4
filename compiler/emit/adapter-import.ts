import { PeftcError } from "../errors";
import { type Target, selectionTargets } from "../dsl/targets";
import type { Discovery } from "../match/discover";
import type { LoraPlan } from "../methods/lora-plan";
import type { LoraRecord } from "../methods/parameters";
import type { Tensor } from "../onnx/tensor";
import { type PeftLoraModule, readPeftAdapter } from "./peft-adapter";

/** A PEFT adapter folder matched to a model's modules. */
export interface AdapterPlans {
  /** One LoRA branch per adapted module, with the adapter's rank and scale, for a compile without a spec. */
  plans: LoraPlan[];
  /** A [rank, in] and B [out, rank] by target path. */
  values: Map<string, { a: Float32Array; b: Float32Array }>;
  /** Checks, after a spec was applied, that the spec adapts every module of the adapter with the adapter's scale. */
  checkCovered(records: readonly LoraRecord[]): void;
}

/**
 * Reads a Hugging Face PEFT LoRA adapter and finds each of its modules in
 * the model by PyTorch module name, so its tensors can start the graph.
 */
export function adapterPlans(dir: string, discovery: Pick<Discovery, "modules">): AdapterPlans {
  const adapter = readPeftAdapter(dir);
  if (adapter.otherTensors.size > 0) {
    // Trained biases (bias "all" or "lora_only") and other saved tensors would change the model, but only LoRA weights are applied.
    const keys = [...adapter.otherTensors.keys()];
    throw new PeftcError(
      "E_ADAPTER",
      `${dir}: the weights file holds tensors that are not LoRA weights (${keys.slice(0, 5).join(", ")}${keys.length > 5 ? `, and ${keys.length - 5} more` : ""}), such as trained biases, which peftc does not import. Export the adapter with bias "none" and without other tensors.`,
      { file: dir, key: keys[0] },
    );
  }
  const byName = new Map<string, Target>();
  for (const target of selectionTargets(discovery)) if (target.kind === "linear" && target.part === undefined) byName.set(target.torchName, target);

  const plans: LoraPlan[] = [];
  const values = new Map<string, { a: Float32Array; b: Float32Array }>();
  const scales = new Map<string, { name: string; module: PeftLoraModule }>();
  for (const [name, module] of adapter.modules) {
    const target = byName.get(name);
    if (!target) {
      const known = [...byName.keys()].slice(0, 8).join(", ");
      throw new PeftcError("E_ADAPTER", `${dir}: the adapter adapts "${name}", but the model has no linear layer of that PyTorch name (it has ${known}${byName.size > 8 ? ", ..." : ""}). Use the adapter with the model it was trained on.`, { file: dir, module: name });
    }
    const [rank, inFeatures] = module.a.dims;
    const [outFeatures] = module.b.dims;
    if (inFeatures !== target.inFeatures || outFeatures !== target.outFeatures) {
      throw new PeftcError(
        "E_ADAPTER",
        `${dir}: "${name}" has lora_A [${module.a.dims}] and lora_B [${module.b.dims}], but ${target.path} is ${target.inFeatures} → ${target.outFeatures}. The adapter belongs to a model of other shapes.`,
        { file: dir, module: name },
      );
    }
    plans.push({ target, rank, alpha: module.alpha, rsLora: adapter.config.use_rslora, scale: module.scale, dropout: adapter.config.lora_dropout, init: "kaiming", gate: false, method: null });
    values.set(target.path, { a: toFloat32(module.a), b: toFloat32(module.b) });
    scales.set(target.path, { name, module });
  }

  const checkCovered = (records: readonly LoraRecord[]): void => {
    const byPath = new Map(records.map((record) => [record.path, record]));
    for (const [path, { name, module }] of scales) {
      const record = byPath.get(path);
      if (!record) {
        throw new PeftcError("E_ADAPTER", `${dir}: the adapter adapts "${name}" (${path}), but the spec puts no LoRA there. Add the module to the spec's targets, or compile with --adapter alone.`, { file: dir, module: name });
      }
      if (Math.abs(record.scale - module.scale) > 1e-12 * Math.max(1, Math.abs(module.scale))) {
        throw new PeftcError(
          "E_ADAPTER",
          `${dir}: "${name}" has scale ${module.scale} (lora_alpha ${module.alpha}, r ${module.rank}) in the adapter but ${record.scale} (alpha ${record.alpha}, rank ${record.rank}) in the spec, so its tensors would mean something else. Make the spec's alpha and rank agree with adapter_config.json.`,
          { file: dir, module: name },
        );
      }
    }
  };
  return { plans, values, checkCovered };
}

function toFloat32(tensor: Tensor): Float32Array {
  const data = tensor.data();
  return data instanceof Float32Array ? data : Float32Array.from(tensor.numbers());
}
