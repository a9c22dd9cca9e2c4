import * as ort from "onnxruntime-node";
import { float16ToFloat32, float32ToFloat16 } from "../../compiler/onnx/half";
import { type Batch, collate } from "../data/batches";
import { IGNORE_INDEX } from "../data/dataset";
import { type ArtifactFolder, feedsFor, scalar } from "./artifacts";

/** Outcome of one optimizer update. Parameters and state stay onnxruntime tensors, fed back into the next update as they are. */
export interface StepOutcome {
  loss: number;
  gradNorm: number;
  countedTokens: number;
  tokens: number;
  params: Record<string, ort.Tensor>;
  state: Record<string, ort.Tensor>;
}

/** Inputs of one update besides the batches. */
export interface StepInputs {
  params: Record<string, ort.Tensor>;
  state: Record<string, ort.Tensor>;
  lr: number;
  /** 1-based update number, for Adam's bias correction. */
  step: number;
}

function updateFeeds(inputs: StepInputs): Record<string, ort.Tensor> {
  return {
    ...inputs.params,
    ...inputs.state,
    lr: new ort.Tensor("float32", Float32Array.of(inputs.lr), []),
    step: new ort.Tensor("int64", BigInt64Array.of(BigInt(inputs.step)), []),
  };
}

function collectUpdated(artifacts: ArtifactFolder, outputs: ort.InferenceSession.OnnxValueMapType): Pick<StepOutcome, "params" | "state"> {
  const pick = (names: string[]): Record<string, ort.Tensor> => Object.fromEntries(names.map((name) => [name, outputs[`${name}.new`] as ort.Tensor]));
  return { params: pick(artifacts.paramNames), state: pick(artifacts.stateNames) };
}

/** Runs one update on one batch with train.onnx, which does forward, backward and optimizer step in a single run. */
export async function trainStep(artifacts: ArtifactFolder, batch: Batch, inputs: StepInputs): Promise<StepOutcome> {
  const session = await artifacts.session("train");
  const outputs = await session.run(feedsFor(session, "train", { ...batch.feeds, ...updateFeeds(inputs) }));
  return {
    loss: scalar(outputs.loss as ort.Tensor),
    gradNorm: scalar(outputs.grad_norm as ort.Tensor),
    countedTokens: scalar(outputs.label_count as ort.Tensor),
    tokens: batch.tokens,
    ...collectUpdated(artifacts, outputs),
  };
}

/**
 * Runs one update from several micro-batches: grad.onnx on each, then
 * apply.onnx once. grad.onnx returns each micro-batch's mean over its own n_i counted
 * labels, so the sum Σ n_i·g_i / Σ n_i is the mean gradient over all counted
 * labels, the gradient of the combined batch. The loss is combined the same
 * way. Micro-batches without counted labels add nothing.
 */
export async function accumulatedStep(artifacts: ArtifactFolder, batches: readonly Batch[], inputs: StepInputs): Promise<StepOutcome> {
  const gradSession = await artifacts.session("grad");
  const names = artifacts.paramNames;
  const sums = new Map<string, Float64Array>();
  let lossSum = 0;
  let counted = 0;
  let tokens = 0;
  for (const batch of batches) {
    const outputs = await gradSession.run(feedsFor(gradSession, "grad", { ...batch.feeds, ...inputs.params }));
    const count = scalar(outputs.label_count as ort.Tensor);
    tokens += batch.tokens;
    if (count === 0) continue;
    lossSum += scalar(outputs.loss as ort.Tensor) * count;
    counted += count;
    for (const name of names) {
      const grad = outputs[`${name}.grad`] as ort.Tensor;
      const values = grad.type === "float16" ? Float32Array.from(grad.data as Uint16Array, float16ToFloat32) : (grad.data as Float32Array);
      let sum = sums.get(name);
      if (!sum) sums.set(name, (sum = new Float64Array(values.length)));
      for (let i = 0; i < values.length; i++) sum[i] += values[i] * count;
    }
  }

  const grads: Record<string, ort.Tensor> = {};
  for (const name of names) {
    const param = inputs.params[name];
    const size = param.dims.reduce((product, dim) => product * dim, 1);
    const sum = sums.get(name) ?? new Float64Array(size);
    const mean = Float32Array.from(sum, (value) => (counted > 0 ? value / counted : 0));
    grads[`${name}.grad`] = param.type === "float16" ? new ort.Tensor("float16", Uint16Array.from(mean, float32ToFloat16), param.dims) : new ort.Tensor("float32", mean, param.dims);
  }

  const applySession = await artifacts.session("apply");
  const outputs = await applySession.run(feedsFor(applySession, "apply", { ...grads, ...updateFeeds(inputs) }));
  return {
    loss: counted > 0 ? lossSum / counted : 0,
    gradNorm: scalar(outputs.grad_norm as ort.Tensor),
    countedTokens: counted,
    tokens,
    ...collectUpdated(artifacts, outputs),
  };
}

/**
 * Advances onnxruntime's dropout mask sequence of the graph a run uses by
 * `runs` calls, so a resumed run draws the masks an uninterrupted one
 * would. Each call runs the graph on one two-token row whose labels are
 * all ignored; the outputs are discarded.
 * NOTE: this relies on onnxruntime's CPU Dropout kernel drawing one fresh
 * seed per run, whatever the input size. The resume tests check it on
 * onnxruntime-node 1.31, and another build could break bit-exact resume.
 */
export async function replayDropout(artifacts: ArtifactFolder, kind: "train" | "grad", runs: number, inputs: StepInputs): Promise<void> {
  const session = await artifacts.session(kind);
  const dummy = collate([{ inputIds: [0, 0], labels: [IGNORE_INDEX, IGNORE_INDEX], classLabel: IGNORE_INDEX, source: "dropout replay" }], artifacts.labelTarget);
  const feeds = feedsFor(session, kind, { ...dummy.feeds, ...updateFeeds(inputs) });
  for (let run = 0; run < runs; run++) await session.run(feeds);
}
