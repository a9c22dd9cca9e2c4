/**
 * BitFit: only the biases of the model train (Ben Zaken et al., 2021), here
 * with the norms' scales as well, a selective recipe that adds no tensors
 * and leaves nothing to merge.
 */
import { bitfit, defineSpec, layerNormTuning } from "peftc";

export default defineSpec({
  methods: [bitfit(), layerNormTuning()],
});
