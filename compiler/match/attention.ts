import type { Node } from "../ir/node";
import { type HeadCounts, readHeads } from "./attention-heads";
import { type QkvLayout, readQkvLayout } from "./fused-qkv";
import type { DiscoveredModule, MatchedModule } from "./module";
import { type Rotary, findRotary } from "./rotary";
import { type AttentionAnchor, ModuleIndex } from "./structure";

/** The nodes of an attention core, by name: the MatMuls and Softmax of a decomposed core, or the fused op. */
export interface AttentionCore {
  form: "decomposed" | "fused";
  /** The fused op, such as "com.microsoft::GroupQueryAttention"; null for a decomposed core. */
  opType: string | null;
  scores: string | null;
  softmax: string | null;
  context: string | null;
  fused: string | null;
}

/** One attention block: its core, head counts, rotary embedding and projections. */
export interface AttentionBlock extends HeadCounts {
  /** Layer of the block's projections; null when they have none or disagree. */
  layer: number | null;
  core: AttentionCore;
  /** Rotary embedding on Q and K; null when neither goes through one. */
  rotary: Rotary | null;
  /** Paths of the projections feeding the core (one fused module for a packed QKV) and of the output projection. */
  q: string[];
  k: string[];
  v: string[];
  o: string[];
  /** Row layout of the fused QKV projection; null when Q, K and V have their own. */
  qkvLayout: QkvLayout | null;
}

function nodeName(node: Node | undefined): string | null {
  if (!node) return null;
  return node.name !== "" ? node.name : `${node.opType} -> ${node.outputs[0]?.name ?? ""}`;
}

function coreOf(anchor: AttentionAnchor): AttentionCore {
  if (anchor.scores && anchor.context) {
    return { form: "decomposed", opType: null, scores: nodeName(anchor.scores), softmax: nodeName(anchor.node), context: nodeName(anchor.context), fused: null };
  }
  return { form: "fused", opType: anchor.node.qualifiedOpType, scores: null, softmax: null, context: null, fused: nodeName(anchor.node) };
}

function blockLayer(modules: readonly DiscoveredModule[]): number | null {
  const layers = new Set(modules.map((module) => module.layer));
  return layers.size === 1 ? [...layers][0] : null;
}

/**
 * Reads the heads of an interleaved [.., groups, parts, head_dim] fused
 * output: each group has widths.q / head_dim query heads and
 * widths.k / head_dim key/value heads.
 */
function interleavedHeads(layout: QkvLayout): HeadCounts | undefined {
  const { groups, headDim, widths } = layout;
  if (layout.layout !== "interleaved" || groups === null || headDim === null || widths === null) return undefined;
  if (widths.q % headDim !== 0 || widths.k % headDim !== 0) return undefined;
  return { heads: (groups * widths.q) / headDim, kvHeads: (groups * widths.k) / headDim, headDim, source: "Reshape of the fused QKV to [batch, seq, groups, parts, head_dim]" };
}

/**
 * Describes each attention core of `anchors`: its nodes, head counts, rotary
 * embedding, and for a fused QKV projection how its rows map to Q, K and V.
 * `discovered` maps matched modules to their named form.
 */
export function describeAttention(anchors: readonly AttentionAnchor[], index: ModuleIndex, discovered: Map<MatchedModule, DiscoveredModule>): AttentionBlock[] {
  const isBoundary = (node: Node): boolean => index.moduleOf(node) !== undefined;
  const named = (side: readonly MatchedModule[]): DiscoveredModule[] => side.map((module) => discovered.get(module)).filter((module) => module !== undefined);
  return anchors.map((anchor) => {
    const [q, k, v, o] = [anchor.q, anchor.k, anchor.v, anchor.o].map(named);
    const fused = q.length === 1 && q[0] === k[0] && k[0] === v[0] && k.length === 1 && v.length === 1 ? q[0] : undefined;
    let heads = readHeads(anchor, isBoundary);
    const qkvLayout = fused ? readQkvLayout(fused, anchor, heads, isBoundary) : null;
    if (heads.heads === null && qkvLayout) heads = interleavedHeads(qkvLayout) ?? heads;
    return {
      ...heads,
      layer: blockLayer([...q, ...k, ...v, ...o]),
      core: coreOf(anchor),
      rotary: findRotary(anchor, isBoundary) ?? null,
      q: q.map((module) => module.path),
      k: k.map((module) => module.path),
      v: v.map((module) => module.path),
      o: o.map((module) => module.path),
      qkvLayout,
    };
  });
}
