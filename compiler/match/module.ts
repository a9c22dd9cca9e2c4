import type { Node } from "../ir/node";
import type { Value } from "../ir/value";
import type { QkvLayout } from "./fused-qkv";

/**
 * Role of a module in a transformer block or around it. `attn.qkv` and
 * `mlp.gate_up` are fused projections. `xattn.*` are the cross-attention
 * projections of an encoder-decoder block. `embed.token_types` is BERT's
 * segment table, and `pooler` is BERT's dense layer on the first token.
 */
export type Role =
  | "attn.q"
  | "attn.k"
  | "attn.v"
  | "attn.qkv"
  | "attn.o"
  | "xattn.q"
  | "xattn.k"
  | "xattn.v"
  | "xattn.o"
  | "mlp.up"
  | "mlp.gate"
  | "mlp.gate_up"
  | "mlp.down"
  | "embed.tokens"
  | "embed.positions"
  | "embed.token_types"
  | "norm"
  | "pooler"
  | "head";

export type ModuleKind = "linear" | "embedding" | "norm";

/** Source of a module's role or layer index: names kept by the exporter, or the shape of the graph. */
export type NamingSource = "graph" | "structure";

/** Storage layout of a linear weight: [in, out] as MatMul reads it, or torch's [out, in] read through a transpose. */
export type WeightLayout = "in_out" | "out_in";

/** A parameter tensor of a module: an initializer, with its shape as stored. */
export interface Parameter {
  value: Value;
  shape: number[];
}

/** One module as a matcher finds it before naming: its nodes, values and parameters. */
export interface MatchedModule {
  kind: ModuleKind;
  /** The node that computes the module (MatMul, Gemm, Gather, the norm op or the first node of a decomposed norm). */
  node: Node;
  /** Every node the module consists of, in graph order. */
  nodes: Node[];
  weight?: Parameter;
  bias?: Parameter;
  /** The activation the module reads (for an embedding, the indices). */
  input?: Value;
  /** The value the module produces, after the bias where there is one. */
  output: Value;
  layout?: WeightLayout;
  inFeatures?: number;
  outFeatures?: number;
  /** Op form, such as "MatMul", "Gemm", "LayerNormalization" or "decomposed RMSNorm". */
  form: string;
  /** Role the matcher itself can tell, such as a position table fed by Range. */
  structuralRole?: Role;
}

/** A discovered module, named. */
export interface DiscoveredModule extends MatchedModule {
  /** Canonical path such as `layers.3.attn.q`. */
  path: string;
  /** Null when neither names nor structure tell the role. */
  role: Role | null;
  layer: number | null;
  /** The initializer or node name the role was read from, or the weight name. */
  originalName: string;
  roleFrom: NamingSource | null;
  layerFrom: NamingSource | null;
  parameterCount: number;
  /** Path of the module that reads the same weight initializer (a tied embedding and head). */
  tiedTo?: string;
  /** For a fused QKV projection, how its output rows map to Q, K and V. */
  qkvLayout?: QkvLayout;
}

/** Something in the graph that looks like a parameter or a module but was not understood. */
export interface Unrecognised {
  kind: "initializer" | "node";
  name: string;
  reason: string;
}
