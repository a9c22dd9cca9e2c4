import type { PromptTuningMethod } from "../dsl/prompt-tuning";
import type { SpecWarning } from "../dsl/match";
import { SpecError } from "../dsl/spec-error";
import type { DiscoveredModule } from "../match/module";
import { DataType } from "../onnx/dtype";
import type { MethodContext, PlannedMethod } from "./method-context";
import { checkPromptIds, initialPromptValues, promptInitIds } from "./prompt-init";
import { prependVirtualTokens } from "./prompt-sequence";
import { addTrainableTensor, parameterRow } from "./trainable";

/** Graph input and params.safetensors name of the virtual-token embeddings; PEFT saves the same tensor as `prompt_embeddings`. */
export const PROMPT_EMBEDDINGS = "prompt_tuning.embeddings";

/**
 * Plans prompt tuning: finds the token embedding (a Gather that reads the
 * `input_ids` graph input) and resolves the init's token ids, so a missing
 * tokenizer or an id out of range fails before the model changes.
 */
export function planPromptTuning(method: PromptTuningMethod, context: MethodContext): PlannedMethod {
  const embedding = tokenEmbedding(method, context);
  const [vocab, hidden] = embedding.weight!.shape;
  const ids = promptInitIds(method, context.modelFile);
  if (ids) checkPromptIds(method, ids, vocab);
  if (context.cached) checkCacheNames(method, context);
  return {
    claims: [{ key: `${embedding.path} output`, description: "prompt tuning (virtual tokens before the token embeddings)", site: method.site }],
    warnings: positionWarnings(method, context),
    insert(insertContext) {
      const graph = insertContext.model.graph;
      const table = embedding.weight!.value.initializer;
      const dtype = table?.dtype ?? DataType.FLOAT;
      const initial = initialPromptValues(method, ids, table, hidden, insertContext.seed, PROMPT_EMBEDDINGS);
      const { value, tensor } = addTrainableTensor(graph, PROMPT_EMBEDDINGS, dtype, [method.virtualTokens, hidden], initial.values);
      const { precedingLogits } = prependVirtualTokens(insertContext.model, embedding.node, value, method.virtualTokens, insertContext.cached);
      return {
        parameters: [parameterRow(tensor, "prompt", embedding.path, initial.init, true)],
        warnings: [],
        precedingLogits: precedingLogits ?? undefined,
      };
    },
  };
}

/** The `embed.tokens` Gather, which must read the `input_ids` graph input so the rewrite can tell real ids from the padded ones. */
function tokenEmbedding(method: PromptTuningMethod, context: MethodContext): DiscoveredModule {
  const graph = context.model.graph;
  const embeddings = context.discovery.modules.filter((module) => module.role === "embed.tokens" && module.node.graph === graph);
  if (embeddings.length !== 1) {
    throw new SpecError("E_SPEC_MODEL", `promptTuning needs exactly one token embedding (role embed.tokens) in the main graph; discovery found ${embeddings.length}. Check the model with \`peftc inspect\`.`, method.site);
  }
  const embedding = embeddings[0];
  const ids = graph.inputs.find((input) => input.name === "input_ids");
  const node = embedding.node;
  let problem: string | null = null;
  if (node.opType !== "Gather" || !embedding.weight || embedding.weight.shape.length !== 2) {
    problem = `${embedding.path} is fused into ${node.qualifiedOpType} "${node.name}", where no embedding can be inserted. Export the model without fused embedding ops (onnxruntime's transformer optimizer makes them)`;
  } else if (!ids) {
    problem = `the model has no graph input named input_ids. Export it with Hugging Face's input names`;
  } else if (node.inputs[1] !== ids) {
    const producer = node.inputs[1]?.producer;
    problem = `${embedding.path} (Gather "${node.name}") reads "${node.inputs[1]?.name}", which ${producer ? `${producer.opType} "${producer.name}" computes` : "is not input_ids"}, not the graph input input_ids itself, so the rewrite cannot put the virtual tokens in front of the real ones. Export the model so the token embedding reads input_ids directly`;
  }
  if (problem !== null) {
    throw new SpecError("E_SPEC_MODEL", `promptTuning prepends virtual tokens to the output of the token embedding's Gather: ${problem}.`, method.site);
  }
  return embedding;
}

/**
 * Checks the virtual tokens against a table of learned positions (GPT-2's
 * `wpe`): they take the first positions, so N of them leave P − N for the
 * real tokens, and N ≥ P leaves none.
 */
function positionWarnings(method: PromptTuningMethod, context: MethodContext): SpecWarning[] {
  const table = context.discovery.modules.find((module) => module.role === "embed.positions" && module.weight?.shape.length === 2);
  if (!table) return [];
  const positions = table.weight!.shape[0];
  if (method.virtualTokens >= positions) {
    throw new SpecError("E_SPEC_MODEL", `promptTuning: option "virtualTokens" is ${method.virtualTokens}, but the model has ${positions} learned positions (${table.path}), and the virtual tokens take the first ones, so no real token would fit. Use fewer than ${positions} virtual tokens.`, method.site, ["virtualTokens"]);
  }
  return [{ message: `promptTuning: the ${method.virtualTokens} virtual tokens take the first of the model's ${positions} learned positions (${table.path}), so inputs may have at most ${positions - method.virtualTokens} real tokens, prompt and generated ones together.`, site: method.site }];
}

/**
 * Checks that a cached graph has Optimum's cache inputs. infer.onnx reads
 * their past length to find the prefill step, the one that adds the
 * virtual tokens.
 */
function checkCacheNames(method: PromptTuningMethod, context: MethodContext): void {
  const inputs = context.model.graph.inputs.map((input) => input.name);
  if (inputs.some((name) => /^past_key_values\.\d+\.key$/.test(name))) return;
  throw new SpecError(
    "E_SPEC_MODEL",
    `promptTuning: infer.onnx needs cache inputs named past_key_values.N.key [batch, kv_heads, past_sequence, head_dim] to add the virtual tokens at the prefill step only, but this export's cache inputs are named otherwise (inputs: ${inputs.join(", ")}). Export the model without a cache, which peftc then adds, or with Optimum's cache names.`,
    method.site,
  );
}
