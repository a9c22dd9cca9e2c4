/**
 * Mix-and-match adapter (He et al., 2022): prefix tuning on attention and a
 * parallel adapter beside the MLP whose output is scaled by 4, the
 * combination that paper found strongest for its parameter budget. The
 * bottleneck is half the hidden size (512 on a 1024-wide model, as there),
 * with GELU, whose smooth gradient suits the finite-difference checks too.
 */
import { adapter, defineSpec, prefixTuning } from "peftc";

export default defineSpec({
  methods: [prefixTuning({ virtualTokens: 30 }), adapter({ kind: "parallel", sublayers: ["mlp"], reductionFactor: 2, scale: 4, activation: "gelu" })],
});
