/**
 * Prefix tuning (Li and Liang, 2021): 20 trainable key and value positions
 * in front of every attention layer's keys and values, reparameterised
 * during training by an MLP of hidden width 128, as PEFT's
 * prefix_projection. infer.onnx reads the prefixes the MLP produces, so
 * decoding never runs it. The prefixes start from the MLP of an N(0, 1)
 * embedding, so the outputs change from the first step.
 */
import { adamw, defineSpec, prefixTuning } from "peftc";

export default defineSpec({
  methods: [prefixTuning({ virtualTokens: 20, projection: { hidden: 128 } })],
  train: { optimizer: adamw({ lr: 1e-2, weightDecay: 0 }), clipGradNorm: 1 },
});
