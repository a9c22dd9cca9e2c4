import { attr } from "../ir/attribute";
import type { Model } from "../ir/model";
import type { Value } from "../ir/value";
import type { QkvPart } from "../match/fused-qkv";
import type { DiscoveredModule } from "../match/module";
import { DataType } from "../onnx/dtype";
import { PeftcError } from "../errors";
import type { Target } from "../dsl/targets";
import { NodeChain } from "./node-chain";
import type { Ia3Group } from "./ia3";
import type { Ia3Record } from "./ia3-record";
import type { TrainableParameter } from "./parameters";
import { addTrainableTensor, parameterRow } from "./trainable";

/**
 * Inserts the scaling of one module: a Mul on the input the MatMul or Gemm
 * reads (feedforward), or on its output after the bias. The scaled output
 * is the Gemm's own output or the bias Add's. A LoRA Add that insertLora
 * placed first sits before the bias Add, so the scaling covers the LoRA
 * update too.
 */
export function insertIa3Scaling(model: Model, group: Ia3Group): { parameters: TrainableParameter[]; records: Ia3Record[] } {
  const { module } = group;
  const graph = model.graph;
  const dtype = module.weight!.value.initializer?.dtype ?? DataType.FLOAT;
  const parameters: TrainableParameter[] = [];
  const records: Ia3Record[] = [];
  const vectors = new Map<QkvPart | null, Value>();
  for (const target of group.targets) {
    const width = group.feedforward ? module.inFeatures! : (target.outFeatures ?? module.outFeatures!);
    const created = addTrainableTensor(graph, `${target.path}.ia3_l`, dtype, [width], new Float32Array(width).fill(1));
    parameters.push(parameterRow(created.tensor, "ia3", target.path, "ones", true));
    vectors.set(target.part ?? null, created.value);
    records.push(recordOf(target, module, group.feedforward, created.value.name));
  }

  if (group.feedforward) {
    const input = module.node.inputs[0]!;
    const chain = new NodeChain(graph, { before: module.node }, `${module.path}/ia3`);
    const scaled = chain.add("Mul", [input, vectors.get(null)!], [], "scale_input");
    module.node.setInput(0, scaled);
    return { parameters, records };
  }
  const output = scaledOutput(module);
  const chain = new NodeChain(graph, { after: output.producer! }, `${module.path}/ia3`);
  const vector = vectors.has(null) ? vectors.get(null)! : placeOnRows(chain, module, vectors, dtype);
  const scaled = chain.add("Mul", [output, vector], [], "scale_output");
  chain.redirect(output, scaled);
  return { parameters, records };
}

function recordOf(target: Target, module: DiscoveredModule, feedforward: boolean, vector: string): Ia3Record {
  return {
    path: target.path,
    module: module.path,
    torchName: target.torchName,
    part: target.part ?? null,
    feedforward,
    layout: module.layout!,
    weight: module.weight!.value.name,
    bias: module.bias?.value.name ?? null,
    inFeatures: module.inFeatures!,
    outFeatures: target.outFeatures ?? module.outFeatures!,
    moduleOutFeatures: module.outFeatures!,
    vector,
    qkv: target.part ? module.qkvLayout! : null,
  };
}

/** Returns the module's output after its bias: the Gemm's output, or the bias Add past any LoRA Add. */
function scaledOutput(module: DiscoveredModule): Value {
  let value = module.node.outputs[0];
  if (module.node.opType === "Gemm" || !module.bias) return loraSum(value) ?? value;
  for (let step = 0; step < 2; step++) {
    const biasAdd = value.uses.find(({ node }) => node.opType === "Add" && node.inputs.includes(module.bias!.value))?.node;
    if (biasAdd) return biasAdd.outputs[0];
    const next = loraSum(value);
    if (!next) break;
    value = next;
  }
  throw new PeftcError("E_SPEC_MODEL", `ia3: cannot find the bias Add of ${module.path} after node "${module.node.name}", so its output after the bias is unknown.`, { module: module.path });
}

/** Returns the output of the LoRA Add that insertLora put on `value`, if any. */
function loraSum(value: Value): Value | undefined {
  const node = value.uses.find(({ node: reader }) => reader.opType === "Add" && reader.name.endsWith("/lora_add"))?.node;
  return node?.outputs[0];
}

/**
 * Builds the full-width vector of a fused projection from its parts'
 * vectors, with ones on the rows of parts that have none. An interleaved
 * layout repeats [q, k, v] rows per head group, so each piece is shaped
 * [groups, rows per group] before the Concat and flattened after it.
 */
function placeOnRows(chain: NodeChain, module: DiscoveredModule, vectors: ReadonlyMap<QkvPart | null, Value>, dtype: DataType): Value {
  const layout = module.qkvLayout!;
  const groups = layout.layout === "interleaved" ? layout.groups! : 1;
  const pieces = layout.order!.map((part) => {
    const width = layout.widths![part];
    const vector = vectors.get(part);
    if (!vector) return chain.constant(`ones_${part}`, dtype, groups === 1 ? [width] : [groups, width], new Float32Array(groups * width).fill(1));
    return groups === 1 ? vector : chain.add("Reshape", [vector, chain.ints(`shape_${part}`, [groups, width])], [], `reshape_${part}`);
  });
  const placed = chain.add("Concat", pieces, [attr.int("axis", -1)], "place");
  return groups === 1 ? placed : chain.add("Reshape", [placed, chain.ints("shape", [module.outFeatures!])], [], "flatten");
}
