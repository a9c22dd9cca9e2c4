/**
 * The spec of `peftc demo`: LoRA r=8 on every linear layer of the demo's
 * base model, including the output head, with a learning rate high enough
 * for a few hundred steps on the synthetic digit task.
 */
import { adamw, defineSpec, lora, select } from "peftc";

export default defineSpec({
  methods: [lora({ targets: select.allLinear().or(select.role("head")), rank: 8, alpha: 16 })],
  train: { optimizer: adamw({ lr: 1e-2, weightDecay: 0 }), clipGradNorm: 1 },
  seed: 5,
});
