import { GradBuilder } from "../autodiff/grad-builder";
import type { SpecWarning } from "../dsl/match";
import { resolveSelection } from "../dsl/match";
import type { PrefixTuningMethod } from "../dsl/prefix-tuning";
import { SpecError } from "../dsl/spec-error";
import { PeftcError } from "../errors";
import type { Value } from "../ir/value";
import type { AttentionBlock } from "../match/attention";
import { keyLayoutProblem } from "../kvcache/rewrite";
import { DataType } from "../onnx/dtype";
import type { MethodContext, MethodResult, PlannedMethod } from "./method-context";
import type { TrainableParameter } from "./parameters";
import type { PrefixTuningRecord } from "./prefix-record";
import { type BlockPrefix, type CoreNodes, insertBlockPrefix } from "./prefix-attention";
import { flatPrefixLayout } from "./prefix-layout";
import { type PrefixedBlock, addGate, prefixValues } from "./prefix-parameters";

/** A prefix tuning resolved against a model, with the element type of its prefixes. */
export interface PrefixTuningPlan extends PrefixTuningRecord {
  /** Element type of the prefixes: that of the first query projection's weight. */
  dtype: DataType;
}

/**
 * Plans prefix tuning (Li and Liang, 2021): every chosen attention layer
 * gets trainable key and value prefixes of [kv_heads, virtual_tokens,
 * head_dim] in front of its keys and values. The prefix keys are not
 * rotated, as in Hugging Face PEFT, where they enter as past keys. The plan
 * checks every block before `insert` changes the model.
 */
export function planPrefixTuning(method: PrefixTuningMethod, context: MethodContext): PlannedMethod {
  const { blocks, warnings } = planBlocks(method, context);
  return {
    claims: blocks.map(({ shape }) => ({ key: `layers.${shape.layer}.attn:prefix`, description: "prefixTuning (key and value prefix)", site: method.site })),
    warnings,
    insert: (insertContext) => insertPrefixTuning(method, insertContext, blocks),
  };
}

/** Summarises a prefix tuning against a model, for the adapter export and the manifest. */
export function describePrefixTuning(method: PrefixTuningMethod, context: MethodContext): PrefixTuningPlan {
  const { blocks } = planBlocks(method, context);
  return { ...recordOf(method, context, blocks), dtype: dtypeOf(blocks) };
}

function recordOf(method: PrefixTuningMethod, context: MethodContext, blocks: readonly PrefixedBlock[]): PrefixTuningRecord {
  return {
    virtualTokens: method.virtualTokens,
    layers: blocks.map((block) => block.shape),
    numLayers: context.discovery.attention.length,
    numAttentionHeads: blocks[0].block.heads,
    tokenDim: tokenDimOf(blocks),
    projectionHidden: method.projectionHidden,
    gate: method.gate,
  };
}

/** Resolves the `layers` selector to attention blocks and checks each one. */
function planBlocks(method: PrefixTuningMethod, context: MethodContext): { blocks: PrefixedBlock[]; warnings: SpecWarning[] } {
  const warnings: SpecWarning[] = [];
  let chosen: Set<number> | null = null;
  if (method.layers) {
    const selection = resolveSelection(method.layers, context.targets, "prefixTuning layers");
    warnings.push(...selection.warnings);
    chosen = new Set(selection.targets.map((target) => target.layer).filter((layer) => layer !== null));
  }
  const blocks = context.discovery.attention.flatMap((block, index) => {
    const layer = block.layer ?? index;
    return chosen && !chosen.has(layer) ? [] : [checkBlock(method, context, block, layer)];
  });
  if (blocks.length === 0) {
    const reason = chosen ? `the layers option selects no layer with an attention block (layers ${[...chosen].join(", ") || "none"})` : "discovery found no attention block in the model";
    throw new SpecError("E_SPEC_MODEL", `prefixTuning: ${reason}. Select modules of layers that have attention, or use another method.`, method.site, method.layers ? ["layers"] : []);
  }
  return { blocks, warnings };
}

function tokenDimOf(blocks: readonly PrefixedBlock[]): number {
  return blocks[0].shape.kvHeads * blocks[0].shape.headDim;
}

function dtypeOf(blocks: readonly PrefixedBlock[]): DataType {
  return blocks[0].query?.weight?.value.initializer?.dtype ?? DataType.FLOAT;
}

/** Rejects a block the rewrite cannot prefix: a fused core, or one whose head counts or query projection discovery did not find. */
function checkBlock(method: PrefixTuningMethod, context: MethodContext, block: AttentionBlock, layer: number): PrefixedBlock {
  if (block.core.form !== "decomposed") {
    throw new SpecError("E_SPEC_MODEL", `prefixTuning: layer ${layer} uses the fused attention op ${block.core.opType} ("${block.core.fused}"), which reads its keys and values inside the kernel, so no prefix can be put in front of them. Export the model with decomposed attention (MatMul, Softmax, MatMul), or use LoRA or prompt tuning.`, method.site);
  }
  const scores = context.model.graph.nodes.find((node) => node.name === block.core.scores);
  const layoutProblem = scores ? keyLayoutProblem(scores) : `its scores node "${block.core.scores}" is not in the graph`;
  if (layoutProblem !== null) {
    throw new SpecError("E_SPEC_MODEL", `prefixTuning: cannot put a prefix in front of layer ${layer}'s keys: ${layoutProblem}. Use LoRA, adapters or prompt tuning on this model, or export it with keys transposed for the scores as Hugging Face's PyTorch models do.`, method.site);
  }
  if (block.kvHeads === null || block.headDim === null) {
    throw new SpecError("E_SPEC_MODEL", `prefixTuning: discovery did not find the key/value head count or head size of layer ${layer}'s attention (scores "${block.core.scores}"), so the prefix shape [kv_heads, tokens, head_dim] is unknown.`, method.site);
  }
  const query = context.discovery.modules.find((module) => module.path === block.q[0]);
  if (method.gate && (!query || query.inFeatures === undefined || !(query.input ?? query.node.inputs[0]))) {
    throw new SpecError("E_SPEC_MODEL", `prefixTuning: gate needs the input of layer ${layer}'s query projection, which discovery did not find. Set gate: false.`, method.site, ["gate"]);
  }
  return { block, shape: { layer, kvHeads: block.kvHeads, headDim: block.headDim }, query };
}

function insertPrefixTuning(method: PrefixTuningMethod, context: MethodContext, blocks: readonly PrefixedBlock[]): MethodResult {
  const graph = context.model.graph;
  const b = new GradBuilder(graph, context.model.opsetVersion("") ?? 0, "/prefix_tuning");
  const dtype = dtypeOf(blocks);
  const layout = flatPrefixLayout(method.virtualTokens, blocks.map((block) => block.shape));
  const parameters: TrainableParameter[] = [];
  const prefixes = prefixValues(method, context, b, layout, blocks, dtype, parameters);

  const byName = new Map(graph.nodes.map((node) => [node.name, node]));
  const paddedMasks = new Map<Value, Value>();
  blocks.forEach(({ block, shape, query }, i) => {
    const core: CoreNodes = { scores: byName.get(block.core.scores!)!, softmax: byName.get(block.core.softmax!)!, context: byName.get(block.core.context!)! };
    if (!core.scores || !core.softmax || !core.context) {
      throw new PeftcError("E_IR_INVARIANT", `prefix tuning: layer ${shape.layer}'s attention core nodes are no longer in the graph; another rewrite replaced them.`, { node: block.core.scores ?? "" });
    }
    const gate = method.gate ? addGate(graph, context.seed, shape.layer, query!, dtype, parameters) : null;
    const prefix: BlockPrefix = { layer: shape.layer, key: prefixes[i].key, value: prefixes[i].value, gate };
    insertBlockPrefix(b, core, prefix, method.virtualTokens, dtype, paddedMasks);
  });
  return { parameters, warnings: [], prefix: recordOf(method, context, blocks) };
}
