/**
 * UniPELT (Mao et al., 2022): LoRA on the query and value projections,
 * prefix tuning, and a serial adapter after the MLP in one model. Each is
 * scaled by its own learned gate, so training decides per token how much
 * each method contributes.
 */
import { adapter, defineSpec, lora, prefixTuning, select } from "peftc";

export default defineSpec({
  methods: [
    lora({ targets: select.role("attn.q", "attn.v"), rank: 8, alpha: 16, gate: true }),
    prefixTuning({ virtualTokens: 10, gate: true }),
    adapter({ kind: "pfeiffer", bottleneck: 16, activation: "gelu", gate: true }),
  ],
});
