/**
 * LoRA on every linear layer except the output head, as PEFT's
 * `target_modules="all-linear"` (the QLoRA recipe), with rank-stabilized
 * scaling so a higher rank does not shrink the update.
 */
import { adamw, defineSpec, lora, select } from "peftc";

export default defineSpec({
  methods: [lora({ targets: select.allLinear(), rank: 16, alpha: 16, rsLora: true, dropout: 0.05 })],
  train: { optimizer: adamw({ lr: 1e-4 }) },
});
