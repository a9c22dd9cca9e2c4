/**
 * (IA)3 with PEFT's targets for LLaMA-style models: learned vectors scale
 * the key and value projections' outputs and the MLP down-projection's
 * input. On GPT-2 the key and value rows of the fused c_attn get their own
 * vectors. The vectors start at one and fold into the weights for inference.
 */
import { adamw, defineSpec, ia3, select } from "peftc";

export default defineSpec({
  methods: [ia3({ targets: select.role("attn.k", "attn.v", "mlp.down"), feedforward: select.role("mlp.down") })],
  train: { optimizer: adamw({ lr: 3e-3 }) },
  inference: { mergeAdapters: true },
});
