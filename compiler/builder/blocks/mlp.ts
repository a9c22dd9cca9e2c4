import { Value } from "../../ir/value";
import { Scope } from "../model-builder";
import { mul } from "../ops";
import { silu } from "./activations";
import { LinearLayout, linear } from "./linear";

export interface SwigluOptions {
  hidden: number;
  intermediate: number;
  layout: LinearLayout;
  bias: boolean;
}

/**
 * Applies LLaMA's gated MLP, down_proj(silu(gate_proj(x)) · up_proj(x)),
 * with modules `gate_proj`, `up_proj`, `down_proj` and the SiLU in `act_fn`.
 */
export function swigluMlp(scope: Scope, x: Value, options: SwigluOptions): Value {
  const { hidden, intermediate, layout, bias } = options;
  const gate = linear(scope.child("gate_proj"), x, { inFeatures: hidden, outFeatures: intermediate, layout, bias }).output;
  const activated = silu(scope.child("act_fn"), gate);
  const up = linear(scope.child("up_proj"), x, { inFeatures: hidden, outFeatures: intermediate, layout, bias }).output;
  const gated = mul(scope, activated, up);
  return linear(scope.child("down_proj"), gated, { inFeatures: intermediate, outFeatures: hidden, layout, bias }).output;
}
