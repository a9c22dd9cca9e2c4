import * as fs from "node:fs";
import * as path from "node:path";
import { Command } from "commander";
import type { Manifest } from "../../compiler/emit/manifest";
import { type PeftAdapterDefaults, writePeftAdapter } from "../../compiler/emit/peft-adapter";
import { writePeftIa3Adapter } from "../../compiler/emit/peft-ia3";
import { promptAdapterInput, writePeftPromptAdapter } from "../../compiler/emit/peft-prompt";
import { writePeftPrefixAdapter } from "../../compiler/emit/peft-prefix";
import { readSafetensors } from "../../compiler/emit/safetensors";
import { PeftcError } from "../../compiler/errors";
import type { ParameterMethod } from "../../compiler/methods/parameters";
import type { CliIo } from "./main";

interface ExportAdapterOptions {
  out: string;
  params?: string;
  taskType?: string;
  baseModel?: string;
  loraOnly?: boolean;
}

/** Task types of PEFT's TaskType enum that a LoRA adapter config may name. */
export const PEFT_TASK_TYPES = ["CAUSAL_LM", "SEQ_CLS", "SEQ_2_SEQ_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"];

/** Reads and checks manifest.json of an artifact folder. */
export function readManifest(artifactDir: string): Manifest {
  const file = path.join(artifactDir, "manifest.json");
  if (!fs.existsSync(file)) {
    throw new PeftcError("E_ARTIFACT", `${file} not found: ${artifactDir} is not an artifact folder. Pass the folder that peftc compile wrote.`, { file });
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new PeftcError("E_ARTIFACT", `${file} is not valid JSON (${(error as Error).message}). Compile the artifacts again.`, { file });
  }
  const record = manifest as Partial<Manifest> | null;
  if (record === null || typeof record !== "object" || record.format !== "peftc.artifacts") {
    throw new PeftcError("E_ARTIFACT", `${file} is not a peftc manifest: its "format" is not "peftc.artifacts".`, { file });
  }
  if (record.version !== 1) {
    throw new PeftcError("E_ARTIFACT", `${file} has manifest version ${JSON.stringify(record.version)}, but this peftc reads version 1. Compile the artifacts again with this peftc.`, { file });
  }
  if (!Array.isArray(record.lora) || !Array.isArray(record.parameters)) {
    throw new PeftcError("E_ARTIFACT", `${file} has no "lora" and "parameters" lists. Compile the artifacts again.`, { file });
  }
  return record as Manifest;
}

/**
 * Returns the adapter-wide settings of the spec's first lora() method, read
 * from the manifest's spec.value. Fields that are absent or of the wrong
 * type are left to the writer's defaults.
 */
/**
 * Warns when the export kept no PyTorch module names, so the adapter's keys
 * use peftc's canonical paths (`layers.0.attn.k`), which PEFT will not
 * find in the Hugging Face model.
 */
function warnCanonicalNames(records: readonly { module: string; torchName: string }[], io: CliIo): void {
  const canonical = records.filter((record) => record.torchName === record.module).map((record) => record.module);
  if (canonical.length === 0) return;
  io.stderr(
    `peftc: warning: the model file kept no PyTorch module names for ${canonical.slice(0, 3).join(", ")}${canonical.length > 3 ? ` and ${canonical.length - 3} more` : ""}, so the adapter names them by peftc's paths, which PEFT will not find in the Hugging Face model. Rename the keys and target_modules to the PyTorch names, or export the model with torch.onnx, which keeps them.\n`,
  );
}

/** PEFT's task type for the loss the artifacts were compiled with; PEFT has none for masked LM, whose base model FEATURE_EXTRACTION loads. */
function defaultTaskType(manifest: Manifest): string {
  const loss = (manifest.loss as { loss?: string } | null)?.loss;
  if (loss === "sequence_classification" || loss === "regression") return "SEQ_CLS";
  if (loss === "masked_lm") return "FEATURE_EXTRACTION";
  return "CAUSAL_LM";
}

function specDefaults(manifest: Manifest): PeftAdapterDefaults {
  const value = manifest.spec?.value as { methods?: unknown } | null | undefined;
  const methods = Array.isArray(value?.methods) ? (value.methods as Record<string, unknown>[]) : [];
  const lora = methods.find((method) => method !== null && typeof method === "object" && method.method === "lora");
  if (!lora) return {};
  const defaults: PeftAdapterDefaults = {};
  if (typeof lora.rank === "number") defaults.rank = lora.rank;
  if (typeof lora.alpha === "number") defaults.alpha = lora.alpha;
  if (typeof lora.dropout === "number") defaults.dropout = lora.dropout;
  if (typeof lora.rsLora === "boolean") defaults.rsLora = lora.rsLora;
  if (lora.bias === "none" || lora.bias === "all" || lora.bias === "lora_only") defaults.bias = lora.bias;
  if (typeof lora.init === "string") defaults.init = lora.init;
  return defaults;
}

/** Adds `peftc export-adapter ARTIFACT_DIR --out DIR`. */
export function registerExportAdapter(program: Command, io: CliIo): void {
  program
    .command("export-adapter")
    .description(
      "Write the LoRA, (IA)3, prompt-tuning or prefix-tuning adapter of an artifact folder as a Hugging Face PEFT adapter folder (adapter_config.json and adapter_model.safetensors) that PeftModel.from_pretrained loads.",
    )
    .argument("<artifact-dir>", "artifact folder written by peftc compile, whose manifest.json lists the LoRA branches or (IA)3 vectors")
    .requiredOption("--out <dir>", "adapter folder to write. It is created if missing, and an existing one must be empty or contain an earlier adapter")
    .option("--params <file>", "safetensors file with the trained values, such as a training checkpoint (default: <artifact-dir>/params.safetensors)")
    .option("--task-type <type>", `PEFT task_type written to adapter_config.json: ${PEFT_TASK_TYPES.join(", ")} (default: from the spec's loss, CAUSAL_LM for causalLM(), SEQ_CLS for sequenceClassification() and regression(), FEATURE_EXTRACTION for maskedLM())`)
    .option("--base-model <name>", "base_model_name_or_path written to adapter_config.json: the Hugging Face model id or path of the base model (default: null)")
    .option("--lora-only", "export the LoRA tensors alone, even when the spec also trains biases, whole modules (train:) or other methods, which the adapter then leaves out")
    .action((artifactDir: string, options: ExportAdapterOptions) => {
      if (options.taskType !== undefined && !PEFT_TASK_TYPES.includes(options.taskType)) {
        throw new PeftcError("E_ADAPTER", `--task-type ${JSON.stringify(options.taskType)} is not a PEFT task type. Use one of ${PEFT_TASK_TYPES.join(", ")}.`);
      }
      const manifest = readManifest(artifactDir);
      options.taskType ??= defaultTaskType(manifest);
      const loraOnly = options.loraOnly === true && manifest.lora.length > 0;
      // Before the adapter check, which would take a prefix tuning's UniPELT gates for bottleneck adapters.
      if (!loraOnly && manifest.parameters.some((parameter) => parameter.method === "prefix")) {
        exportPrefixTuning(manifest, artifactDir, options, io);
        return;
      }
      rejectBottleneckAdapters(manifest, artifactDir, options.loraOnly === true);
      if (!loraOnly && manifest.parameters.some((parameter) => parameter.method === "prompt")) {
        exportPromptTuning(manifest, artifactDir, options, io);
        return;
      }
      if (!loraOnly && (manifest.ia3 ?? []).length > 0) {
        exportIa3(manifest, artifactDir, options, io);
        return;
      }
      if (manifest.lora.length === 0) {
        throw new PeftcError(
          "E_ARTIFACT",
          `${path.join(artifactDir, "manifest.json")} lists no LoRA branches, so there is no PEFT LoRA adapter to export. Compile a spec that uses lora().`,
          { file: artifactDir },
        );
      }
      // NOTE: trained biases and fully trained modules have no PyTorch names in the manifest, so they cannot be exported yet.
      const skipped = manifest.parameters.filter((parameter) => parameter.method !== "lora");
      const skippedList = skipped.map((parameter) => parameter.name).join(", ");
      const skippedText = skipped.length === 1 ? "1 trainable tensor that is not a LoRA weight" : `${skipped.length} trainable tensors that are not LoRA weights`;
      if (skipped.length > 0 && !options.loraOnly) {
        throw new PeftcError(
          "E_ARTIFACT",
          `the artifacts have ${skippedText} (${skippedList}), such as trained biases (bias "all" or "lora_only") or train: modules, which peftc cannot write into a PEFT adapter. The adapter would leave them at the base model's values and change the model's outputs. Pass --lora-only to export the LoRA tensors alone.`,
          { file: artifactDir },
        );
      }
      const tensors = readTrainedTensors(artifactDir, options);
      warnCanonicalNames(manifest.lora, io);

      const written = writePeftAdapter(options.out, {
        lora: manifest.lora,
        tensors,
        taskType: options.taskType,
        baseModel: options.baseModel ?? null,
        // The adapter contains no bias tensors, so its config must not claim trained biases.
        defaults: { ...specDefaults(manifest), ...(options.loraOnly ? { bias: "none" as const } : {}) },
      });

      if (skipped.length > 0) {
        io.stderr(`peftc: warning: --lora-only leaves out ${skippedText} (${skippedList}), so PEFT will use the base model's values for them.\n`);
      }
      const fused = written.modules.filter((module) => module.parts !== null);
      io.stdout(
        `wrote ${options.out}: ${written.modules.length} LoRA modules, r ${written.config.r}, lora_alpha ${written.config.lora_alpha}` +
          (fused.length > 0 ? `, ${fused.length} fused QKV projections adapted as a whole` : "") +
          "\n",
      );
    });
}

/**
 * Rejects bottleneck adapters, which have no Hugging Face PEFT type (PEFT
 * has no Houlsby, Pfeiffer or parallel adapter), unless `--lora-only`
 * requests the LoRA tensors alone.
 */
function rejectBottleneckAdapters(manifest: Manifest, artifactDir: string, loraOnly: boolean): void {
  // An adapter's gate tensors come with its "adapter" tensors, and LoRA and prefix tuning have gates of their own.
  const adapters = manifest.parameters.filter((parameter) => parameter.method === "adapter");
  if (adapters.length === 0 || (loraOnly && manifest.lora.length > 0)) return;
  const modules = [...new Set(adapters.map((parameter) => parameter.module))];
  throw new PeftcError(
    "E_ARTIFACT",
    `the artifacts train bottleneck adapters (adapter() on ${modules.slice(0, 3).join(", ")}${modules.length > 3 ? ", ..." : ""}), which have no Hugging Face PEFT adapter type, so they cannot be written as a PEFT adapter folder. Keep their trained values in the params.safetensors format with the artifact folder${manifest.lora.length > 0 ? ", or pass --lora-only to export the LoRA tensors alone" : ""}.`,
    { file: artifactDir },
  );
}

/** Writes the (IA)3 vectors of an artifact folder as a PEFT IA3 adapter folder. */
function exportIa3(manifest: Manifest, artifactDir: string, options: ExportAdapterOptions, io: CliIo): void {
  if (manifest.lora.length > 0) {
    throw new PeftcError(
      "E_ARTIFACT",
      `the artifacts have both LoRA branches and (IA)3 vectors, but a PEFT adapter folder contains one method. Compile the methods as separate specs to export them.`,
      { file: artifactDir },
    );
  }
  rejectOtherTensors(manifest, artifactDir, { methods: ["ia3"], contents: "the (IA)3 vectors", adapterType: "IA3", specMethod: "ia3()" });
  const tensors = readTrainedTensors(artifactDir, options);
  warnCanonicalNames(manifest.ia3!, io);
  const written = writePeftIa3Adapter(options.out, { records: manifest.ia3!, tensors, taskType: options.taskType, baseModel: options.baseModel ?? null });
  const feedforward = written.modules.filter((module) => module.feedforward).length;
  io.stdout(`wrote ${options.out}: (IA)3 vectors on ${written.modules.length} modules, ${feedforward} of them feedforward (input) scalings\n`);
}

/** Writes the virtual-token embeddings of an artifact folder as a PEFT prompt-tuning adapter folder. */
function exportPromptTuning(manifest: Manifest, artifactDir: string, options: ExportAdapterOptions, io: CliIo): void {
  rejectOtherTensors(manifest, artifactDir, { methods: ["prompt"], contents: "the prompt embeddings", adapterType: "prompt-tuning", specMethod: "promptTuning()" });
  const tensors = readTrainedTensors(artifactDir, options);
  const input = promptAdapterInput(artifactDir, manifest, tensors);
  const written = writePeftPromptAdapter(options.out, { ...input, taskType: options.taskType, baseModel: options.baseModel ?? null });
  if (typeof input.init === "object" && "text" in input.init && written.config.prompt_tuning_init === "RANDOM") {
    io.stderr("peftc: warning: the virtual tokens started from a text, but PEFT's TEXT init needs a tokenizer name, so the config gets RANDOM. Pass --base-model NAME to write TEXT. The trained embeddings load either way.\n");
  }
  io.stdout(`wrote ${options.out}: prompt tuning, ${written.config.num_virtual_tokens} virtual tokens of ${written.config.token_dim} values, init ${written.config.prompt_tuning_init}\n`);
}

/** Writes the key and value prefixes of an artifact folder as a PEFT prefix-tuning adapter folder. */
function exportPrefixTuning(manifest: Manifest, artifactDir: string, options: ExportAdapterOptions, io: CliIo): void {
  if (!manifest.prefix) {
    throw new PeftcError("E_ARTIFACT", `${path.join(artifactDir, "manifest.json")} lists prefix-tuning tensors but no "prefix" record of their layers. Compile the artifacts again with this peftc.`, { file: artifactDir });
  }
  // The prefix tuning's UniPELT gates are "gate" tensors, which writePeftPrefixAdapter rejects with its own message.
  rejectOtherTensors(manifest, artifactDir, { methods: ["prefix", "gate"], contents: "the prefix-tuning tensors", adapterType: "prefix-tuning", specMethod: "prefixTuning()" });
  const tensors = readTrainedTensors(artifactDir, options);
  const written = writePeftPrefixAdapter(options.out, { record: manifest.prefix, tensors, taskType: options.taskType, baseModel: options.baseModel ?? null });
  const { config } = written;
  io.stdout(`wrote ${options.out}: prefix tuning, ${config.num_virtual_tokens} virtual tokens in ${config.num_layers} layers of ${config.token_dim} values (${config.num_attention_heads} key/value heads)${config.prefix_projection ? ", projection folded into the rows" : ""}\n`);
}

/** Reads the trained values: the --params file, or the artifact folder's params.safetensors. */
function readTrainedTensors(artifactDir: string, options: ExportAdapterOptions): ReturnType<typeof readSafetensors>["tensors"] {
  return readSafetensors(options.params ?? path.join(artifactDir, "params.safetensors")).tensors;
}

/** The one method that a PEFT adapter type can hold, for rejectOtherTensors. */
interface SingleMethodAdapter {
  /** Manifest `method` values of the tensors the adapter contains. */
  methods: ParameterMethod[];
  /** Those tensors in words, such as "the prompt embeddings". */
  contents: string;
  /** PEFT's name of the adapter type, such as "prompt-tuning". */
  adapterType: string;
  /** The spec method that trains the tensors, such as "promptTuning()". */
  specMethod: string;
}

/**
 * Rejects trained tensors outside `adapter.methods`, because an adapter
 * folder contains one PEFT method and PEFT would leave the others at the base
 * model's values, which changes the model's outputs.
 */
function rejectOtherTensors(manifest: Manifest, artifactDir: string, adapter: SingleMethodAdapter): void {
  const others = manifest.parameters.filter((parameter) => !adapter.methods.includes(parameter.method));
  if (others.length === 0) return;
  const listed = others.slice(0, 3).map((parameter) => parameter.name).join(", ") + (others.length > 3 ? ", ..." : "");
  throw new PeftcError(
    "E_ARTIFACT",
    `the artifacts train ${others.length} tensors besides ${adapter.contents} (${listed}), but a PEFT ${adapter.adapterType} adapter contains ${adapter.contents} alone, so PEFT would use the base model's values for them. Compile a spec with ${adapter.specMethod} alone to export it.`,
    { file: artifactDir },
  );
}
