/**
 * Houlsby adapters: a bottleneck of 16 (down-projection, GELU,
 * up-projection) after the attention output and after the MLP of every
 * layer, each added to its sublayer's output before the residual add.
 * The up-projection starts at zero, so training starts from the base model.
 */
import { adamw, adapter, defineSpec } from "peftc";

export default defineSpec({
  methods: [adapter({ kind: "houlsby", bottleneck: 16, activation: "gelu" })],
  train: { optimizer: adamw({ lr: 1e-3, weightDecay: 0.01 }), clipGradNorm: 1 },
});
