import type { GradBuilder } from "../autodiff/grad-builder";
import type { PrefixTuningMethod } from "../dsl/prefix-tuning";
import { PeftcError } from "../errors";
import type { Graph } from "../ir/graph";
import { tensorType } from "../ir/types";
import type { Value } from "../ir/value";
import type { AttentionBlock } from "../match/attention";
import type { DiscoveredModule } from "../match/module";
import type { DataType } from "../onnx/dtype";
import { Tensor } from "../onnx/tensor";
import type { MethodContext } from "./method-context";
import type { TrainableParameter } from "./parameters";
import type { BlockPrefix } from "./prefix-attention";
import { initialGate, initialLinear, initialPrefix } from "./prefix-init";
import type { FlatPrefixLayout, PrefixLayer } from "./prefix-layout";
import { PROJECTION_NAMES, type ProjectionArrays, buildProjection, foldProjection, prefixNames } from "./prefix-projection";
import { addTrainableTensor, parameterRow } from "./trainable";

/** One attention block that gets a prefix. */
export interface PrefixedBlock {
  block: AttentionBlock;
  shape: PrefixLayer;
  /** The block's query projection, whose input the gate reads; the planner checks that it exists when the method has a gate. */
  query: DiscoveredModule | undefined;
}

/**
 * Returns each block's key and value prefix. Without a projection they are
 * trainable tensors. With one, the training graphs compute them from the
 * trainable MLP. infer.onnx (context.cached) reads them as plain tensors,
 * so decoding never runs the MLP. They are constants folded from
 * `context.values` when adapters are merged, and graph inputs otherwise,
 * which the runtime computes once with prefix.onnx.
 */
export function prefixValues(method: PrefixTuningMethod, context: MethodContext, b: GradBuilder, layout: FlatPrefixLayout, blocks: readonly PrefixedBlock[], dtype: DataType, parameters: TrainableParameter[]): { key: Value; value: Value }[] {
  const graph = context.model.graph;
  const tokens = method.virtualTokens;
  if (method.projectionHidden === null) {
    return blocks.map(({ block, shape }) => {
      const names = prefixNames(shape.layer);
      const add = (name: string): Value => {
        const added = addTrainableTensor(graph, name, dtype, [shape.kvHeads, tokens, shape.headDim], initialPrefix(context.seed, name, shape.kvHeads * tokens * shape.headDim));
        parameters.push(parameterRow(added.tensor, "prefix", attentionPath(block, shape.layer), "normal(std=1)", true));
        return added.value;
      };
      return { key: add(names.key), value: add(names.value) };
    });
  }
  const tokenDim = blocks[0].shape.kvHeads * blocks[0].shape.headDim;
  const hidden = method.projectionHidden;
  if (!context.cached) {
    const add = (name: string, shape: number[], values: Float32Array, init: string): Value => {
      const added = addTrainableTensor(graph, name, dtype, shape, values);
      parameters.push(parameterRow(added.tensor, "prefix", "prefix_encoder", init, true));
      return added.value;
    };
    const first = initialLinear(context.seed, PROJECTION_NAMES.firstWeight, hidden, tokenDim);
    const second = initialLinear(context.seed, PROJECTION_NAMES.secondWeight, layout.width, hidden);
    const values = {
      embedding: add(PROJECTION_NAMES.embedding, [tokens, tokenDim], initialPrefix(context.seed, PROJECTION_NAMES.embedding, tokens * tokenDim), "normal(std=1)"),
      firstWeight: add(PROJECTION_NAMES.firstWeight, [hidden, tokenDim], first.weight, first.init),
      firstBias: add(PROJECTION_NAMES.firstBias, [hidden], first.bias, first.init),
      secondWeight: add(PROJECTION_NAMES.secondWeight, [layout.width, hidden], second.weight, second.init),
      secondBias: add(PROJECTION_NAMES.secondBias, [layout.width], second.bias, second.init),
    };
    return buildProjection(b, values, layout);
  }
  if (context.mergeAdapters) {
    const folded = foldProjection(projectionArrays(context), layout, tokenDim, hidden);
    return layout.layers.map(({ layer }) => {
      const names = prefixNames(layer.layer);
      const shape = [layer.kvHeads, tokens, layer.headDim];
      return { key: graph.addInitializer(Tensor.fromArray(names.key, dtype, shape, folded.get(names.key)!)), value: graph.addInitializer(Tensor.fromArray(names.value, dtype, shape, folded.get(names.value)!)) };
    });
  }
  return layout.layers.map(({ layer }) => {
    const names = prefixNames(layer.layer);
    const shape = [layer.kvHeads, tokens, layer.headDim];
    return { key: graph.addInput(names.key, tensorType(dtype, shape)), value: graph.addInput(names.value, tensorType(dtype, shape)) };
  });
}

/** Reads the projection's values from `context.values`, which infer.onnx gets from the trained or initial parameters. */
function projectionArrays(context: MethodContext): ProjectionArrays {
  const read = (name: string): Float32Array => {
    const tensor = context.values?.get(name);
    if (!tensor) throw new PeftcError("E_IR_INVARIANT", `prefix tuning: folding the projection into infer.onnx needs the value of ${name}, which the compile did not pass.`, { tensor: name });
    return Float32Array.from(tensor.data() as ArrayLike<number>);
  };
  return {
    embedding: read(PROJECTION_NAMES.embedding),
    firstWeight: read(PROJECTION_NAMES.firstWeight),
    firstBias: read(PROJECTION_NAMES.firstBias),
    secondWeight: read(PROJECTION_NAMES.secondWeight),
    secondBias: read(PROJECTION_NAMES.secondBias),
  };
}

/** Adds a layer's UniPELT gate weight [hidden, 1] and bias [1] as trainable tensors. */
export function addGate(graph: Graph, seed: number, layer: number, query: DiscoveredModule, dtype: DataType, parameters: TrainableParameter[]): NonNullable<BlockPrefix["gate"]> {
  const hidden = query.inFeatures!;
  const input = query.input ?? query.node.inputs[0]!;
  const initial = initialGate(seed, `prefix.layers.${layer}.gate`, hidden);
  const weight = addTrainableTensor(graph, `prefix.layers.${layer}.gate.weight`, dtype, [hidden, 1], initial.weight);
  const bias = addTrainableTensor(graph, `prefix.layers.${layer}.gate.bias`, dtype, [1], initial.bias);
  parameters.push(parameterRow(weight.tensor, "gate", `layers.${layer}.attn`, initial.init, true));
  parameters.push(parameterRow(bias.tensor, "gate", `layers.${layer}.attn`, initial.init, true));
  return { input, weight: weight.value, bias: bias.value };
}

/** Canonical path of an attention block: its query projection's path without the last part, such as `layers.0.attn`. */
function attentionPath(block: AttentionBlock, layer: number): string {
  const query = block.q[0];
  return query ? query.slice(0, query.lastIndexOf(".")) : `layers.${layer}.attn`;
}
