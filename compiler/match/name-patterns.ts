import type { Role } from "./module";

/**
 * Name patterns of the common exporters, as data. A pattern is a list of
 * name segments that must appear in this order, consecutively, in an
 * initializer or node name once it is split at `.`, `/`, `:` and at the `_`
 * that torch.export puts in place of dots. Segments that contain `_`
 * themselves (`q_proj`) are matched as one unit.
 *
 * The first matching entry wins, so the longer BERT patterns
 * (`attention.output.dense`) sit above the shorter ones (`output.dense`).
 */
export interface NamePattern {
  segments: string[];
  role: Role;
  /** Path below the layer for norms, whose role alone does not tell them apart. */
  slot?: string;
}

const ATTENTION: NamePattern[] = [
  { segments: ["encoder_attn", "q_proj"], role: "xattn.q" },
  { segments: ["encoder_attn", "k_proj"], role: "xattn.k" },
  { segments: ["encoder_attn", "v_proj"], role: "xattn.v" },
  { segments: ["encoder_attn", "out_proj"], role: "xattn.o" },
  { segments: ["attention", "output", "dense"], role: "attn.o" },
  { segments: ["attention", "self", "query"], role: "attn.q" },
  { segments: ["attention", "self", "key"], role: "attn.k" },
  { segments: ["attention", "self", "value"], role: "attn.v" },
  { segments: ["query_key_value"], role: "attn.qkv" },
  { segments: ["qkv_proj"], role: "attn.qkv" },
  { segments: ["c_attn"], role: "attn.qkv" },
  { segments: ["attn", "c_proj"], role: "attn.o" },
  { segments: ["q_proj"], role: "attn.q" },
  { segments: ["k_proj"], role: "attn.k" },
  { segments: ["v_proj"], role: "attn.v" },
  { segments: ["o_proj"], role: "attn.o" },
  { segments: ["out_proj"], role: "attn.o" },
  { segments: ["attention", "dense"], role: "attn.o" },
  { segments: ["self_attention", "dense"], role: "attn.o" },
];

const MLP: NamePattern[] = [
  { segments: ["gate_up_proj"], role: "mlp.gate_up" },
  { segments: ["gate_proj"], role: "mlp.gate" },
  { segments: ["up_proj"], role: "mlp.up" },
  { segments: ["down_proj"], role: "mlp.down" },
  { segments: ["mlp", "c_fc"], role: "mlp.up" },
  { segments: ["mlp", "c_proj"], role: "mlp.down" },
  { segments: ["intermediate", "dense"], role: "mlp.up" },
  { segments: ["output", "dense"], role: "mlp.down" },
  { segments: ["dense_h_to_4h"], role: "mlp.up" },
  { segments: ["dense_4h_to_h"], role: "mlp.down" },
  { segments: ["fc_in"], role: "mlp.up" },
  { segments: ["fc_out"], role: "mlp.down" },
  { segments: ["fc1"], role: "mlp.up" },
  { segments: ["fc2"], role: "mlp.down" },
];

const NORMS: NamePattern[] = [
  { segments: ["attention", "output", "LayerNorm"], role: "norm", slot: "attn_norm" },
  { segments: ["transform", "LayerNorm"], role: "norm", slot: "head_norm" },
  { segments: ["output", "LayerNorm"], role: "norm", slot: "mlp_norm" },
  { segments: ["embeddings", "LayerNorm"], role: "norm", slot: "embed_norm" },
  { segments: ["word_embeddings_layernorm"], role: "norm", slot: "embed_norm" },
  { segments: ["input_layernorm"], role: "norm", slot: "attn_norm" },
  { segments: ["post_attention_layernorm"], role: "norm", slot: "mlp_norm" },
  { segments: ["self_attn_layer_norm"], role: "norm", slot: "attn_norm" },
  { segments: ["encoder_attn_layer_norm"], role: "norm", slot: "xattn_norm" },
  { segments: ["final_layer_norm"], role: "norm", slot: "mlp_norm" },
  { segments: ["ln_1"], role: "norm", slot: "attn_norm" },
  { segments: ["ln_2"], role: "norm", slot: "mlp_norm" },
  { segments: ["ln_f"], role: "norm", slot: "final_norm" },
  { segments: ["final_layernorm"], role: "norm", slot: "final_norm" },
  { segments: ["norm"], role: "norm", slot: "final_norm" },
];

const EMBEDDINGS: NamePattern[] = [
  { segments: ["embed_tokens"], role: "embed.tokens" },
  { segments: ["word_embeddings"], role: "embed.tokens" },
  { segments: ["wte"], role: "embed.tokens" },
  { segments: ["embed_in"], role: "embed.tokens" },
  { segments: ["position_embeddings"], role: "embed.positions" },
  { segments: ["embed_positions"], role: "embed.positions" },
  { segments: ["wpe"], role: "embed.positions" },
  { segments: ["token_type_embeddings"], role: "embed.token_types" },
];

const HEADS: NamePattern[] = [
  { segments: ["pooler", "dense"], role: "pooler" },
  { segments: ["lm_head"], role: "head" },
  { segments: ["embed_out"], role: "head" },
  { segments: ["classifier"], role: "head" },
  { segments: ["qa_outputs"], role: "head" },
  { segments: ["score"], role: "head" },
  { segments: ["predictions", "decoder"], role: "head" },
  { segments: ["seq_relationship"], role: "head" },
];

/** Every pattern, in the order they are tried. */
export const NAME_PATTERNS: readonly NamePattern[] = [...ATTENTION, ...MLP, ...NORMS, ...EMBEDDINGS, ...HEADS];

/** Names of the list that holds the blocks: the segment after one of these is the layer index. */
export const LAYER_LISTS: readonly string[] = ["layers", "layer", "h", "blocks", "block", "layer_"];

const SEPARATORS = /[./:]+/;

/**
 * Splits a name into segments at `.`, `/` and `:`, then splits each segment
 * at `_` where the pieces rejoin into known segments. So
 * `p_model_layers_0_self_attn_q_proj_weight` becomes
 * `p model layers 0 self_attn q_proj weight`, while `q_proj` stays whole.
 */
export function nameSegments(name: string): string[] {
  const segments: string[] = [];
  for (const part of name.split(SEPARATORS)) {
    if (part === "") continue;
    segments.push(...splitUnderscores(part));
  }
  return segments;
}

const KNOWN = new Set(NAME_PATTERNS.flatMap((pattern) => pattern.segments).concat(LAYER_LISTS, ["self_attn", "self_attention", "encoder_attn"]));

/** Splits `model_layers_0_self_attn` into known multi-word segments, greedily from the left. */
function splitUnderscores(part: string): string[] {
  if (KNOWN.has(part) || !part.includes("_")) return [part];
  const pieces = part.split("_").filter((piece) => piece !== "");
  const out: string[] = [];
  let i = 0;
  while (i < pieces.length) {
    let taken = 1;
    for (let length = pieces.length - i; length > 1; length--) {
      if (KNOWN.has(pieces.slice(i, i + length).join("_"))) {
        taken = length;
        break;
      }
    }
    out.push(pieces.slice(i, i + taken).join("_"));
    i += taken;
  }
  return out;
}

function containsRun(segments: string[], run: string[]): boolean {
  for (let start = 0; start + run.length <= segments.length; start++) {
    if (run.every((segment, k) => segments[start + k] === segment)) return true;
  }
  return false;
}

/** Returns the first pattern whose segments appear in `name`, or undefined. */
export function matchName(name: string, allowed?: (pattern: NamePattern) => boolean): NamePattern | undefined {
  const segments = nameSegments(name);
  return NAME_PATTERNS.find((pattern) => (!allowed || allowed(pattern)) && containsRun(segments, pattern.segments));
}

/**
 * Reads the layer index from the segment after the first layer list
 * (`layers.3`, `h.3`, `layer_._3`, `blocks.3`). It never takes the last
 * number in the name, so in `model.layers.1.mlp.experts.0.up_proj` the layer
 * is 1.
 */
export function layerIndexOf(name: string): number | undefined {
  const segments = nameSegments(name);
  for (let i = 0; i + 1 < segments.length; i++) {
    if (!LAYER_LISTS.includes(segments[i])) continue;
    if (/^\d+$/.test(segments[i + 1])) return Number(segments[i + 1]);
  }
  return undefined;
}
