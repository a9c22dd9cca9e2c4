import { PeftcError } from "../errors";
import { buildBackward } from "../autodiff/backward";
import type { TrainSettings } from "../dsl/spec";
import type { Loss } from "../dsl/training";
import type { Graph } from "../ir/graph";
import { inferShapes } from "../ir/infer";
import { Model } from "../ir/model";
import { tensorType } from "../ir/types";
import type { Value } from "../ir/value";
import type { TrainableParameter } from "../methods/parameters";
import { DataType } from "../onnx/dtype";
import { addLoss } from "./loss";
import { type StepParameter, addOptimizerStep, stateNames } from "./optimizer";

/** The emitted graphs: `eval` (loss and logits), `grad` (loss and gradients), `train` (one optimizer step) and `apply` (the step alone, from accumulated gradients). */
export type TrainingGraphKind = "eval" | "grad" | "train";

/** Output name of a parameter's gradient in grad.onnx and apply.onnx's input. */
export function gradName(parameter: string): string {
  return `${parameter}.grad`;
}

/** Picks the graph output a loss reads: the one named `logits`, else the first. */
export function logitsOutput(model: Model): Value {
  return model.graph.outputs.find((output) => output.name === "logits") ?? model.graph.outputs[0];
}

/**
 * Turns a PEFT forward graph (from `applySpec`) into an eval, grad or train
 * graph in place, replacing its outputs:
 *
 * - eval: `loss`, `label_count` and the model's outputs (`logits` first);
 * - grad: `loss`, `label_count` and `<param>.grad` for every trainable tensor;
 * - train: `loss`, `label_count`, `grad_norm`, `<param>.new` and the
 *   optimizer state `<state>.new`, with inputs `lr`, `step` and the state
 *   added.
 *
 * `label_count` is the number of labels the loss averaged over, so a
 * runtime accumulating micro-batches can weight each one's gradients.
 *
 * `decays(parameter)` says whether weight decay applies to it.
 * `precedingLogits` comes from prompt tuning (PeftGraph.precedingLogits):
 * a causal LM loss reads it in place of the shifted `logits`.
 */
export function addTrainingHead(
  model: Model,
  kind: TrainingGraphKind,
  parameters: readonly TrainableParameter[],
  settings: TrainSettings,
  decays: (parameter: TrainableParameter) => boolean,
  /** Residual-stream values at layer starts, used when the settings ask for activation checkpointing. */
  checkpoints: readonly Value[] = [],
  precedingLogits?: Value,
): Loss {
  const graph = model.graph;
  const opset = model.opsetVersion("") ?? 0;
  inferShapes(model);
  const logits = logitsOutput(model);
  if (settings.loss === null && logits.name !== "logits") {
    throw new PeftcError(
      "E_SPEC_MODEL",
      `the model has no output named "logits" (its outputs: ${graph.outputs.map((output) => output.name).join(", ")}), so peftc cannot tell which loss fits. Name one in the spec's train settings, such as regression({ targets }) on "${logits.name}".`,
      { value: logits.name },
    );
  }
  const originalOutputs = [...graph.outputs];
  const loss = addLoss(graph, opset, logits, settings.loss, kind !== "eval", precedingLogits);
  const outputs: [string, Value][] = [["loss", loss.loss], ["label_count", loss.count]];

  if (kind === "eval") {
    // The model's other outputs (a cached export's presents) stay: fused kernels such as
    // GroupQueryAttention fail in onnxruntime 1.31 when their present outputs are dropped.
    for (const output of originalOutputs) outputs.push([output.name, output]);
  } else {
    const values = parameters.map((parameter) => graph.lookup(parameter.name)!);
    const grads = buildBackward(model, new Map([[loss.scores, loss.logitsGrad!]]), values, { checkpoints: settings.checkpointActivations ? checkpoints : [] });
    if (kind === "grad") {
      parameters.forEach((parameter, i) => outputs.push([gradName(parameter.name), grads.get(values[i])!]));
    } else {
      const stepParameters: StepParameter[] = parameters.map((parameter, i) => ({
        name: parameter.name,
        value: values[i],
        grad: grads.get(values[i])!,
        shape: parameter.shape,
        dtype: parameter.tensor.dtype,
        decay: decays(parameter),
      }));
      const step = addOptimizerStep(graph, opset, settings.optimizer, stepParameters, settings.clipGradNorm);
      outputs.push(["grad_norm", step.gradNorm]);
      for (const [name, value] of step.updated) outputs.push([name, value]);
    }
    // onnxruntime 1.31's GroupQueryAttention reuses a buffer of the wrong shape when its present
    // outputs have no consumer, so the outputs of com.microsoft kernels stay graph outputs here too.
    for (const output of originalOutputs) if (output !== logits && output.producer?.domain === "com.microsoft") outputs.push([output.name, output]);
  }
  setOutputs(graph, outputs);
  return loss.resolved!;
}

/**
 * Builds apply.onnx: the optimizer step alone, taking each parameter and
 * its (accumulated) gradient `<param>.grad` as inputs, so a runtime can sum
 * gradients of several grad.onnx runs and then step once.
 */
export function buildApplyGraph(parameters: readonly TrainableParameter[], settings: TrainSettings, decays: (parameter: TrainableParameter) => boolean, opset: number): Model {
  const model = new Model({ irVersion: 9, opsetImports: new Map([["", opset]]), graphName: "apply" });
  const graph = model.graph;
  const stepParameters: StepParameter[] = parameters.map((parameter) => {
    const type = tensorType(parameter.tensor.dtype, [...parameter.shape]);
    return {
      name: parameter.name,
      value: graph.addInput(parameter.name, type),
      grad: graph.addInput(gradName(parameter.name), type),
      shape: parameter.shape,
      dtype: parameter.tensor.dtype as DataType,
      decay: decays(parameter),
    };
  });
  const step = addOptimizerStep(graph, opset, settings.optimizer, stepParameters, settings.clipGradNorm);
  setOutputs(graph, [["grad_norm", step.gradNorm], ...step.updated]);
  return model;
}

/** Names of the optimizer state tensors, in input order, for the manifest and the runtime. */
export function optimizerStateNames(settings: TrainSettings, parameters: readonly TrainableParameter[]): string[] {
  return parameters.flatMap((parameter) => stateNames(settings.optimizer, parameter.name));
}

/** Replaces the graph outputs by Identity copies under the contract's names. */
function setOutputs(graph: Graph, outputs: readonly [string, Value][]): void {
  graph.outputs.length = 0;
  for (const [name, value] of outputs) {
    if (value.name === name) {
      graph.addOutput(value);
      continue;
    }
    const named = graph.addNode({ opType: "Identity", name: `/outputs/${name}`, inputs: [value], outputs: [name] }).outputs[0];
    if (named.name !== name) {
      throw new PeftcError("E_IR_INVARIANT", `cannot name a graph output "${name}": the model already has a value of that name. Rename that value in the model.`, { value: name });
    }
    named.type = value.type;
    graph.addOutput(named);
  }
}
