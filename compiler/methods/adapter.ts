import { Random } from "../builder/random";
import type { AdapterActivation, AdapterMethod } from "../dsl/adapter";
import type { SpecWarning } from "../dsl/match";
import { SpecError } from "../dsl/spec-error";
import { PeftcError } from "../errors";
import type { Model } from "../ir/model";
import type { Value } from "../ir/value";
import { DataType, isFloatType } from "../onnx/dtype";
import { NodeChain } from "./node-chain";
import { type AdapterSite, findAdapterSites } from "./adapter-sites";
import type { MethodContext, MethodResult, PlannedMethod } from "./method-context";
import type { ParameterMethod, TrainableParameter } from "./parameters";
import { addTrainableTensor, parameterRow } from "./trainable";

/**
 * Resolves a bottleneck adapter against the model: one adapter per chosen
 * layer and sublayer. A serial adapter (Houlsby, Pfeiffer) changes the
 * output h of the sublayer's output projection, after its bias and before
 * the residual add, to h + up(act(down(h))). A parallel adapter reads the
 * sublayer's normed input x and adds scale · up(act(down(x))) to that
 * output. Each claims `<projection path>:serial` or `:parallel`, so two
 * serial adapters on one sublayer conflict while LoRA or (IA)3 on the
 * projection itself compose with either.
 *
 * NOTE: (IA)3 on the same projection's output composes by spec order: the
 * method listed later acts on the projection's output first.
 *
 * Tensors are named `<PyTorch name of the projection>.adapter.<serial |
 * parallel>.<down | up | gate>.<weight | bias>`. Weights are stored
 * [in, out] as MatMul reads them: down [hidden, bottleneck], up
 * [bottleneck, hidden], gate [hidden, 1].
 */
export function planAdapter(method: AdapterMethod, context: MethodContext): PlannedMethod {
  const { sites, warnings } = findAdapterSites(method, context.discovery, context.targets);
  const bottlenecks = sites.map((site) => bottleneckOf(method, site.hidden));
  checkBottlenecks(method, sites, bottlenecks, warnings);
  const claims = sites.map((site) => ({
    key: `${site.projection.path}:${site.placement}`,
    description: `adapter (${method.kind}, ${site.placement === "serial" ? "after" : "beside"} the ${site.sublayer} of layer ${site.layer})`,
    site: method.site,
  }));
  for (const site of sites) {
    const dtype = site.projection.weight?.value.initializer?.dtype ?? DataType.FLOAT;
    if (!isFloatType(dtype)) {
      throw new SpecError("E_SPEC_MODEL", `adapter: ${site.projection.path} has a ${DataType[dtype]} weight, but adapters need a float model (quantized weights are not supported).`, method.site);
    }
  }
  return {
    claims,
    warnings,
    insert(insertContext: MethodContext): MethodResult {
      const parameters = sites.flatMap((site, i) => insertAdapter(insertContext.model, method, site, bottlenecks[i], insertContext.seed));
      return { parameters, warnings: [] as SpecWarning[] };
    },
  };
}

/**
 * Warns about a bottleneck wider than the hidden size, which is no
 * bottleneck and may train more parameters than the base layers, and about
 * a reduction factor larger than the hidden size, rounded up to a width of 1.
 */
function checkBottlenecks(method: AdapterMethod, sites: readonly { hidden: number }[], bottlenecks: readonly number[], warnings: SpecWarning[]): void {
  const hidden = Math.min(...sites.map((site) => site.hidden));
  if (method.bottleneck !== undefined && method.bottleneck > hidden) {
    warnings.push({ message: `adapter: bottleneck ${method.bottleneck} is wider than the hidden size ${hidden} it should compress, so each adapter trains ${2 * hidden * method.bottleneck + method.bottleneck + hidden} parameters. Adapters usually take hidden / 16.`, site: method.site });
  }
  if (method.bottleneck === undefined && sites.some((site) => site.hidden / method.reductionFactor < 1)) {
    warnings.push({ message: `adapter: reductionFactor ${method.reductionFactor} is larger than the hidden size ${hidden}, so the bottleneck is rounded up to ${Math.min(...bottlenecks)}.`, site: method.site });
  }
}

/** Returns the bottleneck width: the option, or hidden / reductionFactor rounded down and at least 1. */
export function bottleneckOf(method: Pick<AdapterMethod, "bottleneck" | "reductionFactor">, hidden: number): number {
  return method.bottleneck ?? Math.max(1, Math.floor(hidden / method.reductionFactor));
}

function insertAdapter(model: Model, method: AdapterMethod, site: AdapterSite, bottleneck: number, seed: number): TrainableParameter[] {
  const graph = model.graph;
  const { hidden, stem } = site;
  const dtype = site.projection.weight?.value.initializer?.dtype ?? DataType.FLOAT;
  const anchor = site.output.producer;
  if (!anchor || site.output.graph !== graph) {
    throw new PeftcError("E_SPEC_MODEL", `cannot add an adapter after ${site.projection.path}: its output "${site.output.name}" is not computed by a node of the main graph.`, { module: site.projection.path });
  }
  const parameters: TrainableParameter[] = [];
  const module = site.projection.path;
  const add = (suffix: string, shape: number[], values: Float32Array, init: string, kind: ParameterMethod = "adapter"): Value => {
    const created = addTrainableTensor(graph, `${stem}.${suffix}`, dtype, shape, values);
    parameters.push(parameterRow(created.tensor, kind, module, init, true));
    return created.value;
  };
  // PyTorch's nn.Linear draws weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const bound = 1 / Math.sqrt(hidden);
  const linearInit = `kaiming_uniform(a=sqrt(5)): U(-${formatNumber(bound)}, ${formatNumber(bound)})`;
  const downWeight = add("down.weight", [hidden, bottleneck], uniform(seed, `${stem}.down.weight`, hidden * bottleneck, bound), linearInit);
  const downBias = add("down.bias", [bottleneck], uniform(seed, `${stem}.down.bias`, bottleneck, bound), linearInit);
  // The up-projection starts at zero, so the adapted model starts equal to the base model.
  const upWeight = add("up.weight", [bottleneck, hidden], new Float32Array(bottleneck * hidden), "zeros");
  const upBias = add("up.bias", [hidden], new Float32Array(hidden), "zeros");

  const chain = new NodeChain(graph, { after: anchor }, stem);
  const down = chain.add("Add", [chain.add("MatMul", [site.input, downWeight], [], "down/MatMul"), downBias], [], "down/Add");
  const activated = activate(chain, method.activation, down, dtype);
  let delta = chain.add("Add", [chain.add("MatMul", [activated, upWeight], [], "up/MatMul"), upBias], [], "up/Add");
  if (site.placement === "parallel" && method.scale !== 1) delta = chain.add("Mul", [delta, chain.scalar("scale", method.scale, dtype)], [], "scale");
  if (method.gate) {
    // The gate starts at sigmoid(0) = 0.5 for every token: half open, where the sigmoid's slope is largest.
    const gateWeight = add("gate.weight", [hidden, 1], new Float32Array(hidden), "zeros", "gate");
    const gateBias = add("gate.bias", [1], new Float32Array(1), "zeros", "gate");
    const logit = chain.add("Add", [chain.add("MatMul", [site.input, gateWeight], [], "gate/MatMul"), gateBias], [], "gate/Add");
    delta = chain.add("Mul", [delta, chain.add("Sigmoid", [logit], [], "gate/Sigmoid")], [], "gate/Mul");
  }
  const sum = chain.add("Add", [site.output, delta], [], "residual");
  chain.redirect(site.output, sum);
  return parameters;
}

/**
 * Adds the activation between the projections. GELU is the exact erf form,
 * x · 0.5 · (1 + erf(x / sqrt(2))), as PyTorch's nn.GELU() computes it, built
 * from ops every opset from 13 has; SiLU is x · sigmoid(x).
 */
function activate(chain: NodeChain, activation: AdapterActivation, x: Value, dtype: DataType): Value {
  switch (activation) {
    case "relu":
      return chain.add("Relu", [x]);
    case "tanh":
      return chain.add("Tanh", [x]);
    case "silu":
      return chain.add("Mul", [x, chain.add("Sigmoid", [x])], [], "silu");
    case "gelu": {
      const erf = chain.add("Erf", [chain.add("Div", [x, chain.scalar("sqrt2", Math.SQRT2, dtype)])]);
      const half = chain.add("Mul", [chain.add("Add", [erf, chain.scalar("one", 1, dtype)]), chain.scalar("half", 0.5, dtype)]);
      return chain.add("Mul", [x, half], [], "gelu");
    }
  }
}

/** Draws `count` values from U(-bound, bound) on the stream of one tensor, so adding a tensor never changes another's values. */
function uniform(seed: number, key: string, count: number, bound: number): Float32Array {
  const random = new Random(seed, key);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = (2 * random.uniform() - 1) * bound;
  return values;
}

function formatNumber(value: number): string {
  return Number(value.toPrecision(6)).toString();
}
