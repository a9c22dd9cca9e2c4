import { PeftcError } from "../errors";
import { SpecError } from "../dsl/spec-error";
import { attr } from "../ir/attribute";
import type { Model } from "../ir/model";
import type { Value } from "../ir/value";
import type { QkvPart } from "../match/fused-qkv";
import type { DiscoveredModule } from "../match/module";
import { DataType, isFloatType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import { describeLoraInit, initialLoraA } from "./lora-init";
import type { SpecWarning } from "../dsl/match";
import type { LoraPlan } from "./lora-plan";
import type { LoraRecord, TrainableParameter } from "./parameters";
import { NodeChain } from "./node-chain";
import { addTrainableTensor, parameterRow } from "./trainable";
import type { GraphMode } from "./method-context";

export type { GraphMode } from "./method-context";

/** Initial A [rank, in] and B [out, rank] values for a target path, such as those read from an adapter file. */
export type LoraValues = ReadonlyMap<string, { a: Float32Array; b: Float32Array }>;

export interface LoraInsertOptions {
  mode: GraphMode;
  seed: number;
  /** Values that replace the initialisation, by target path. */
  initial?: LoraValues;
}

/**
 * Inserts LoRA branches into `model`: for each module,
 * y' = y + dropout(x)·Aᵀ·(scale·Bᵀ), with A [rank, in] and B [out, rank] new
 * trainable graph inputs. The base weight is never touched, so its layout
 * ([in, out] or [out, in] through a Transpose) does not matter here.
 *
 * The plans of one fused QKV projection that adapt only some of its parts
 * share one branch. The parts' A rows are stacked into one [ΣR, in] product,
 * and a [ΣR, out] matrix puts each part's scaled B on that part's output rows
 * with zeros elsewhere. The update therefore costs one extra matmul pair per
 * module whatever the layout.
 */
export function insertLora(model: Model, plans: readonly LoraPlan[], options: LoraInsertOptions): { parameters: TrainableParameter[]; records: LoraRecord[]; warnings: SpecWarning[] } {
  const groups = new Map<DiscoveredModule, LoraPlan[]>();
  for (const plan of plans) {
    const group = groups.get(plan.target.module) ?? [];
    group.push(plan);
    groups.set(plan.target.module, group);
  }
  const parameters: TrainableParameter[] = [];
  const records: LoraRecord[] = [];
  const warnings: SpecWarning[] = [];
  for (const [module, group] of groups) {
    const inserted = insertModuleBranch(model, module, group, options);
    parameters.push(...inserted.parameters);
    records.push(...inserted.records);
    warnings.push(...inserted.warnings);
  }
  return { parameters, records, warnings };
}

function insertModuleBranch(model: Model, module: DiscoveredModule, plans: readonly LoraPlan[], options: LoraInsertOptions): { parameters: TrainableParameter[]; records: LoraRecord[]; warnings: SpecWarning[] } {
  // The branch reads and writes the MatMul or Gemm itself, not the module's
  // outer values: discovery extends those through Reshapes (to 2-D before a
  // Gemm, to heads after a projection) that change the shape. A bias added
  // later commutes with the update.
  const input = module.node.inputs[0];
  const output = module.node.outputs[0];
  const weight = module.weight;
  if (!input || !weight || module.inFeatures === undefined || module.outFeatures === undefined || !module.layout) {
    throw new PeftcError("E_SPEC_MODEL", `cannot add LoRA to ${module.path} (node "${module.node.name}"): discovery did not find its input, weight and widths.`, { node: module.node.name });
  }
  const dtype = weight.value.initializer?.dtype ?? DataType.FLOAT;
  if (!isFloatType(dtype)) {
    throw new PeftcError("E_SPEC_MODEL", `cannot add LoRA to ${module.path}: its weight "${weight.value.name}" is ${DataType[dtype]}, not a float type (quantized weights are not supported yet).`, { node: module.node.name });
  }
  // A fused attention op (com.microsoft::Attention) reads its packed QKV
  // weight directly, so there is no projection output to add to. Its update
  // goes on the weight instead: W + Aᵀ·(scale·Bᵀ), which is exact but cannot
  // apply dropout to the activations.
  const packed = module.node.opType !== "MatMul" && module.node.opType !== "Gemm";
  const warnings: SpecWarning[] = [];
  if (packed && options.mode === "train" && plans.some((plan) => plan.dropout > 0)) {
    warnings.push({
      message: `lora: ${module.path} is the packed weight of ${module.node.qualifiedOpType} (node "${module.node.name}"), whose update is added to the weight, so its LoRA trains without dropout.`,
      site: plans[0].method?.site,
    });
  }
  const gated = plans.some((plan) => plan.gate);
  if (packed && gated) {
    throw new SpecError("E_SPEC_MODEL", `lora: option "gate" cannot apply to ${module.path}: it is the packed weight of ${module.node.qualifiedOpType} (node "${module.node.name}"), whose update goes into the weight, where no per-token gate exists. Leave this module out of the gated method.`, plans.find((plan) => plan.gate)!.method?.site, ["gate"]);
  }
  const builder = new BranchBuilder(module.node.graph, packed ? { before: module.node } : { after: module.node }, module.path);
  const parameters: TrainableParameter[] = [];
  const records: LoraRecord[] = [];
  const hidden: Value[] = [];
  const blocks: Value[] = [];
  for (const plan of plans) {
    const path = plan.target.path;
    const outFeatures = plan.target.outFeatures ?? module.outFeatures;
    const initial = options.initial?.get(path);
    if (initial && (initial.a.length !== plan.rank * module.inFeatures || initial.b.length !== outFeatures * plan.rank)) {
      throw new PeftcError(
        "E_ADAPTER",
        `the adapter's tensors for ${path} hold ${initial.a.length} and ${initial.b.length} values, but rank ${plan.rank} on a ${module.inFeatures} → ${outFeatures} layer needs ${plan.rank * module.inFeatures} and ${outFeatures * plan.rank}. Make the spec's rank equal the adapter's r.`,
        { module: path },
      );
    }
    const aValues = initial?.a ?? initialLoraA(plan.init, plan.rank, module.inFeatures, options.seed, `lora_A:${path}`);
    const bValues = initial?.b ?? new Float32Array(outFeatures * plan.rank);
    const a = addTrainableTensor(model.graph, `${path}.lora_A`, dtype, [plan.rank, module.inFeatures], aValues);
    const b = addTrainableTensor(model.graph, `${path}.lora_B`, dtype, [outFeatures, plan.rank], bValues);
    const init = initial ? "adapter" : describeLoraInit(plan.init, plan.rank, module.inFeatures);
    parameters.push(parameterRow(a.tensor, "lora", path, init, true), parameterRow(b.tensor, "lora", path, initial ? "adapter" : "zeros", true));
    records.push({
      path,
      module: module.path,
      torchName: plan.target.torchName,
      part: plan.target.part ?? null,
      layout: module.layout,
      weight: weight.value.name,
      inFeatures: module.inFeatures,
      outFeatures,
      rank: plan.rank,
      alpha: plan.alpha,
      rsLora: plan.rsLora,
      scale: plan.scale,
      dropout: plan.dropout,
      a: a.value.name,
      b: b.value.name,
      qkv: plan.target.part ? module.qkvLayout! : null,
      gate: null,
    });

    const aT = builder.add("Transpose", [a.value], [attr.ints("perm", [1, 0])]);
    if (packed) {
      hidden.push(aT);
    } else {
      const dropped = options.mode === "train" && plan.dropout > 0 ? builder.dropout(input, plan.dropout, dtype, dropoutSeed(options.seed, path)) : input;
      hidden.push(builder.add("MatMul", [dropped, aT], [], "lora_A"));
    }
    const scaledB = builder.add("Mul", [builder.add("Transpose", [b.value], [attr.ints("perm", [1, 0])]), builder.scalar("lora_scale", plan.scale, dtype)]);
    blocks.push(plan.target.part ? builder.placeOnRows(scaledB, plan.rank, plan.target.part, module, dtype) : scaledB);
  }
  const h = hidden.length === 1 ? hidden[0] : builder.add("Concat", hidden, [attr.int("axis", -1)]);
  const bFused = blocks.length === 1 ? blocks[0] : builder.add("Concat", blocks, [attr.int("axis", 0)]);
  let delta = builder.add("MatMul", [h, bFused], [], "lora_B");
  if (gated) {
    const gate = addGate(model, builder, input, module, dtype);
    parameters.push(...gate.parameters);
    for (const record of records) record.gate = gate.weight;
    delta = builder.add("Mul", [delta, gate.value], [], "lora_gated");
  }
  if (packed) {
    // The packed weight is stored [in, out], as Aᵀ·Bᵀ is.
    const merged = builder.add("Add", [weight.value, delta], [], "lora_weight");
    module.node.inputs.forEach((value, index) => {
      if (value === weight.value) module.node.setInput(index, merged);
    });
  } else {
    builder.addToOutput(output, delta);
  }
  return { parameters, records, warnings };
}

/**
 * Adds a UniPELT gate sigmoid(x·w + b) on the module's input x, one value
 * per token. The weight starts at zero and the bias at 0, so the gate starts
 * at 0.5 for every token and learns which tokens the update should reach.
 */
function addGate(model: Model, builder: BranchBuilder, input: Value, module: DiscoveredModule, dtype: DataType): { value: Value; weight: string; parameters: TrainableParameter[] } {
  const inFeatures = module.inFeatures!;
  const weight = addTrainableTensor(model.graph, `${module.path}.lora_gate.weight`, dtype, [inFeatures, 1], new Float32Array(inFeatures));
  const bias = addTrainableTensor(model.graph, `${module.path}.lora_gate.bias`, dtype, [1], new Float32Array(1));
  const logits = builder.add("Add", [builder.add("MatMul", [input, weight.value], [], "lora_gate_MatMul"), bias.value], [], "lora_gate_Add");
  return {
    value: builder.add("Sigmoid", [logits], [], "lora_gate"),
    weight: weight.value.name,
    parameters: [parameterRow(weight.tensor, "gate", module.path, "zeros", true), parameterRow(bias.tensor, "gate", module.path, "zeros", true)],
  };
}

/** Derives a dropout node's seed from the spec's seed and the target path, so each branch draws its own masks. */
function dropoutSeed(seed: number, path: string): number {
  let hash = 2166136261 ^ seed;
  for (const char of path) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619);
  return (hash >>> 0) % 2 ** 31;
}

/** Adds the nodes of one LoRA branch in order, after an anchor node. */
class BranchBuilder extends NodeChain {
  /**
   * Adds inverted dropout in training mode. The node also outputs its mask,
   * which the backward pass reads. `seed` makes onnxruntime's mask sequence
   * repeat from one session to the next.
   */
  dropout(input: Value, ratio: number, dtype: DataType, seed: number): Value {
    const ratioValue = this.scalar("lora_dropout", ratio, dtype);
    const training = this.graph.addInitializer(Tensor.fromArray(`${this.stem}.lora_dropout_training`, DataType.BOOL, [], Uint8Array.of(1)));
    return this.addNode("Dropout", [input, ratioValue, training], [attr.int("seed", seed)], "lora_dropout", 2).outputs[0];
  }

  /**
   * Widens a part's [rank, part rows] block to [rank, fused rows] with zeros
   * on the other parts' rows. A contiguous layout is one group. An
   * interleaved one repeats [q, k, v] rows per head group, so the block is
   * reshaped to [rank, groups, rows per group], concatenated per group, and
   * flattened.
   */
  placeOnRows(block: Value, rank: number, part: QkvPart, module: DiscoveredModule, dtype: DataType): Value {
    const layout = module.qkvLayout!;
    const groups = layout.layout === "interleaved" ? layout.groups! : 1;
    const pieces = layout.order!.map((each) => {
      if (each === part) return groups === 1 ? block : this.reshape(block, [rank, groups, layout.widths![part]]);
      const shape = groups === 1 ? [rank, layout.widths![each]] : [rank, groups, layout.widths![each]];
      return this.constant(`lora_zeros_${each}`, dtype, shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
    });
    const placed = this.add("Concat", pieces, [attr.int("axis", -1)]);
    return groups === 1 ? placed : this.reshape(placed, [rank, module.outFeatures!]);
  }

  reshape(value: Value, shape: number[]): Value {
    return this.add("Reshape", [value, this.ints("lora_shape", shape)]);
  }

  /** Adds `delta` to `output` and moves every reader of `output` to the sum, keeping a graph output's name. */
  addToOutput(output: Value, delta: Value): void {
    const sum = this.add("Add", [output, delta], [], "lora_add");
    sum.type = output.type;
    this.redirect(output, sum);
  }
}
