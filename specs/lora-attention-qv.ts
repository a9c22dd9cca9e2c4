/**
 * LoRA on the attention query and value projections, the setup of the
 * original LoRA paper and PEFT's most common recipe. On models with a fused
 * QKV projection (GPT-2's c_attn) the roles select the query and value rows
 * inside it.
 */
import { adamw, defineSpec, lora, select } from "peftc";

export default defineSpec({
  methods: [lora({ targets: select.role("attn.q", "attn.v"), rank: 8, alpha: 16, dropout: 0.05 })],
  // No loss is named, so it follows the model: causal LM for a decoder, classification for a classifier head.
  train: { optimizer: adamw({ lr: 2e-4, weightDecay: 0.01 }), clipGradNorm: 1 },
});
