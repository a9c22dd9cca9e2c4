import type { Ia3Method } from "../dsl/ia3";
import { matchSelector, resolveSelection } from "../dsl/match";
import { SpecError } from "../dsl/spec-error";
import type { Target } from "../dsl/targets";
import type { DiscoveredModule } from "../match/module";
import { DataType, isFloatType } from "../onnx/dtype";
import { insertIa3Scaling } from "./ia3-insert";
import type { Ia3Record } from "./ia3-record";
import type { MethodContext, MethodResult, PlannedMethod } from "./method-context";

/** The (IA)3 targets of one module: the whole module, or the parts of a fused QKV projection it scales. */
export interface Ia3Group {
  module: DiscoveredModule;
  feedforward: boolean;
  targets: Target[];
}

/**
 * Resolves an (IA)3 method against the model. Each target gets a vector l
 * of ones. A feedforward target's input is scaled, x ↦ W·(l ⊙ x) + b, and
 * any other target's output, after the bias: y ↦ l ⊙ (W·x + b). That is
 * what PEFT's IA3 Linear.forward computes: it multiplies the base layer's
 * result, bias included, and its merge() scales the bias too
 * (peft/tuners/ia3/layer.py).
 *
 * Parts of a fused QKV projection (GPT-2's c_attn) get a vector each, as
 * separate k_proj and v_proj layers would, so the trainable count equals
 * PEFT's on the separate-projection model. In the graph, a Concat puts
 * them on the parts' rows with constant ones on the other rows.
 * Each module is claimed as `<module path>:ia3`, so two (IA)3 methods on
 * one module conflict.
 */
export function planIa3(method: Ia3Method, context: MethodContext): PlannedMethod {
  const selection = resolveSelection(method.targets, context.targets, "ia3 targets", ["linear"]);
  const feedforward = new Set(matchSelector(method.feedforward, context.targets));
  const groups = new Map<DiscoveredModule, Ia3Group>();
  for (const target of selection.targets) {
    const isFeedforward = feedforward.has(target) || (target.part !== undefined && feedforward.has(wholeTarget(context.targets, target)));
    if (isFeedforward && target.part !== undefined) {
      throw new SpecError(
        "E_SPEC_MODEL",
        `ia3: ${target.path} is part ${target.part} of the fused projection ${target.module.path} and is also a feedforward target, but the parts share one input, so only the whole projection's input can be scaled. Select ${target.module.path} as the feedforward target, or keep the part out of feedforward.`,
        method.site,
        ["feedforward"],
      );
    }
    checkTarget(method, target);
    const group = groups.get(target.module) ?? { module: target.module, feedforward: isFeedforward, targets: [] };
    group.targets.push(target);
    groups.set(target.module, group);
  }
  const claims = [...groups.keys()].map((module) => ({ key: `${module.path}:ia3`, description: "ia3 (a scaling vector)", site: method.site }));
  return {
    claims,
    warnings: selection.warnings,
    insert(insertContext: MethodContext): MethodResult {
      const records: Ia3Record[] = [];
      const parameters = [...groups.values()].flatMap((group) => {
        const inserted = insertIa3Scaling(insertContext.model, group);
        records.push(...inserted.records);
        return inserted.parameters;
      });
      return { parameters, warnings: [], ia3: records };
    },
  };
}

function wholeTarget(targets: readonly Target[], part: Target): Target {
  return targets.find((target) => target.module === part.module && target.part === undefined)!;
}

function checkTarget(method: Ia3Method, target: Target): void {
  const module = target.module;
  const dtype = module.weight?.value.initializer?.dtype ?? DataType.FLOAT;
  if (!module.weight || !module.layout || module.inFeatures === undefined || module.outFeatures === undefined) {
    throw new SpecError("E_SPEC_MODEL", `ia3: discovery did not find the weight and widths of ${target.path} (node "${module.node.name}"), so it cannot be scaled. Exclude it from the targets.`, method.site, ["targets"]);
  }
  if (!isFloatType(dtype)) {
    throw new SpecError("E_SPEC_MODEL", `ia3: ${target.path} has a ${DataType[dtype]} weight, but (IA)3 needs a float model (quantized weights are not supported).`, method.site, ["targets"]);
  }
  if (module.node.opType !== "MatMul" && module.node.opType !== "Gemm") {
    throw new SpecError(
      "E_SPEC_MODEL",
      `ia3: ${target.path} is the packed weight of ${module.node.qualifiedOpType} (node "${module.node.name}"), which has no projection output to scale. Exclude it from the targets.`,
      method.site,
      ["targets"],
    );
  }
  if (target.part !== undefined && (!module.qkvLayout?.order || !module.qkvLayout.widths || module.qkvLayout.layout === "ambiguous")) {
    throw new SpecError("E_SPEC_MODEL", `ia3: the rows of ${target.path} inside ${module.path} are unknown (${module.qkvLayout?.message ?? "no row layout"}). Target the whole projection instead.`, method.site, ["targets"]);
  }
}
