/**
 * Prompt tuning (Lester et al., 2021): 20 trainable virtual tokens before
 * every input, and nothing else trains. A decoder learns to predict the
 * first real token from the last virtual one, as PEFT trains it. The
 * learning rate is far above LoRA's because the embeddings are the only
 * trainable tensor and start from N(0, 1).
 */
import { adamw, defineSpec, promptTuning } from "peftc";

export default defineSpec({
  methods: [promptTuning({ virtualTokens: 20 })],
  train: { optimizer: adamw({ lr: 3e-2, weightDecay: 0 }), clipGradNorm: 1 },
});
