/**
 * LoRA on only the query and value rows of GPT-2's fused `c_attn`
 * projection, which Hugging Face PEFT cannot express: its LoRA on `c_attn`
 * always spans query, key and value. Each part gets its own A and B, and
 * the key rows stay exactly as trained.
 */
import { defineSpec, lora, select } from "peftc";

export default defineSpec({
  methods: [
    lora({
      targets: select.role("attn.q", "attn.v").and(select.name("c_attn")),
      rank: 8,
      alpha: 16,
      // The value rows of the first layer get a larger rank, as PEFT's rank_pattern allows.
      rankPattern: { "layers.0.attn.v": 16 },
    }),
  ],
});
