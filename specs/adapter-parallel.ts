/**
 * Parallel adapters (He et al., 2022) beside the MLP of every layer: each
 * reads the MLP's normed input and adds 4 × its output to the MLP's output,
 * with the bottleneck width hidden / 16. A learned per-token gate, as in
 * UniPELT, scales each adapter's output.
 */
import { adamw, adapter, defineSpec } from "peftc";

export default defineSpec({
  methods: [adapter({ kind: "parallel", sublayers: ["mlp"], reductionFactor: 16, activation: "relu", scale: 4, gate: true })],
  train: { optimizer: adamw({ lr: 1e-3, weightDecay: 0.01 }), clipGradNorm: 1 },
});
