import { ShapeRuleRegistry } from "../registry";
import { attentionRules } from "./attention";
import { attentionContribRules } from "./attention-contrib";
import { castRules } from "./cast";
import { comparisonRules } from "./comparison";
import { concatSplitRules } from "./concat-split";
import { contribLayerRules } from "./contrib-layers";
import { controlFlowRules } from "./control-flow";
import { einsumRules } from "./einsum";
import { elementwiseRules } from "./elementwise";
import { expandRules } from "./expand";
import { gatherRules } from "./gather";
import { generationContribRules } from "./generation-contrib";
import { matmulRules } from "./matmul";
import { normalizationRules } from "./normalization";
import { reduceRules } from "./reduce";
import { reshapeRules } from "./reshape";
import { resizeRules } from "./resize";
import { shapeOpRules } from "./shape-ops";
import { sliceRules } from "./slice";

/** Builds a registry with every rule family; a family registering an op another already covers throws here. */
export function createDefaultRegistry(): ShapeRuleRegistry {
  const registry = new ShapeRuleRegistry();
  for (const family of [
    elementwiseRules,
    comparisonRules,
    castRules,
    matmulRules,
    einsumRules,
    shapeOpRules,
    reshapeRules,
    gatherRules,
    sliceRules,
    concatSplitRules,
    expandRules,
    resizeRules,
    reduceRules,
    normalizationRules,
    attentionRules,
    contribLayerRules,
    attentionContribRules,
    generationContribRules,
    controlFlowRules,
  ]) {
    registry.registerAll(family);
  }
  return registry;
}
