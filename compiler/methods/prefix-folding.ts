import { GradBuilder } from "../autodiff/grad-builder";
import type { PrefixTuningMethod } from "../dsl/prefix-tuning";
import type { Spec } from "../dsl/spec";
import { selectionTargets } from "../dsl/targets";
import { Model } from "../ir/model";
import { tensorType } from "../ir/types";
import type { Discovery } from "../match/discover";
import { flatPrefixLayout } from "./prefix-layout";
import { PROJECTION_NAMES, buildProjection, prefixNames } from "./prefix-projection";
import { describePrefixTuning } from "./prefix-tuning";

/**
 * Builds prefix.onnx for a spec whose prefix tuning has a projection and
 * whose infer.onnx reads the folded prefixes as inputs. The graph takes the
 * projection's trainable tensors and outputs every layer's key and value
 * prefix under the names infer.onnx reads. A runtime thus computes them
 * once per set of parameters, not once per decoding step. Returns null
 * when infer.onnx needs no folding (no projection, or merged adapters).
 */
export function buildPrefixFolding(base: Model, discovery: Discovery, spec: Spec | null): Model | null {
  const method = spec?.methods.find((candidate): candidate is PrefixTuningMethod => candidate.method === "prefix");
  if (!spec || !method || method.projectionHidden === null || spec.inference.mergeAdapters) return null;
  const plan = describePrefixTuning(method, { model: base, discovery, targets: selectionTargets(discovery), mode: "eval", seed: spec.seed, cached: true });
  const layout = flatPrefixLayout(plan.virtualTokens, plan.layers);
  const hidden = method.projectionHidden;
  const dtype = plan.dtype;

  const model = new Model({ irVersion: base.irVersion, opsetImports: new Map([["", base.opsetVersion("") ?? 17]]), graphName: "prefix_projection" });
  const graph = model.graph;
  const input = (name: string, shape: number[]) => graph.addInput(name, tensorType(dtype, shape));
  const values = {
    embedding: input(PROJECTION_NAMES.embedding, [plan.virtualTokens, plan.tokenDim]),
    firstWeight: input(PROJECTION_NAMES.firstWeight, [hidden, plan.tokenDim]),
    firstBias: input(PROJECTION_NAMES.firstBias, [hidden]),
    secondWeight: input(PROJECTION_NAMES.secondWeight, [layout.width, hidden]),
    secondBias: input(PROJECTION_NAMES.secondBias, [layout.width]),
  };
  const b = new GradBuilder(graph, base.opsetVersion("") ?? 17, "/prefix_projection");
  const prefixes = buildProjection(b, values, layout);
  layout.layers.forEach(({ layer }, i) => {
    const names = prefixNames(layer.layer);
    const shape = [layer.kvHeads, plan.virtualTokens, layer.headDim];
    for (const [name, value] of [
      [names.key, prefixes[i].key],
      [names.value, prefixes[i].value],
    ] as const) {
      const output = graph.addNode({ opType: "Identity", name: `/prefix_projection/${name}`, inputs: [value], outputs: [name] }).outputs[0];
      output.type = tensorType(dtype, shape);
      graph.addOutput(output);
    }
  });
  return model;
}
