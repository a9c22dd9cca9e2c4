import { PeftcError } from "../errors";
import { attr } from "../ir/attribute";
import type { Graph } from "../ir/graph";
import { type Dim, tensorType } from "../ir/types";
import type { Value } from "../ir/value";
import { GradBuilder } from "../autodiff/grad-builder";
import type { Loss } from "../dsl/training";
import { DataType } from "../onnx/dtype";

/** Label value that takes no part in a cross-entropy loss, as PyTorch's ignore_index. */
export const IGNORE_INDEX = -100;

/** A loss added to a graph: its value and, for training, the gradient of the loss with respect to the logits. */
export interface LossNodes {
  loss: Value;
  /** float scalar: the labels the loss averages over (cross-entropy: labels not -100; regression: every element), for weighting micro-batches. */
  count: Value;
  /** The `labels` graph input. */
  labels: Value;
  /** d loss / d logits, present when built with `withGradient`. */
  logitsGrad?: Value;
  /** The logits `logitsGrad` belongs to: `logits`, or the preceding-position logits a causal LM loss read instead. */
  scores: Value;
  /** The loss used: the spec's, or the default the logits' shape chose. */
  resolved?: Loss;
}

/** A Slice end past any real length: Slice clamps it to the dim. */
const TO_END = Number.MAX_SAFE_INTEGER;

/**
 * Adds a loss on `logits` and a `labels` input shaped for the task:
 *
 * - causal LM: logits [batch, sequence, vocab] at position t against
 *   labels [batch, sequence] at t + 1;
 * - masked LM: logits at t against labels at t;
 * - sequence classification: logits [batch, classes] against labels [batch];
 * - regression: mean squared error of logits [batch, targets] and float
 *   labels of the same shape.
 *
 * Cross-entropy ignores labels of -100 and averages over the counted
 * labels, dividing by at least one, so a batch whose labels are all ignored
 * gives a loss of 0 and zero gradients instead of NaN. The gradient is the
 * closed form (softmax − one-hot) · mask / count, which saves
 * differentiating through LogSoftmax and GatherElements.
 *
 * `precedingLogits` [batch, sequence, vocab], when a method provides them,
 * are the logits of the position before each label (prompt tuning's: the
 * last virtual token, then the real tokens but the last). A causal LM loss
 * then reads them against the labels without a shift, so every label,
 * the first included, is a target, as PEFT's prompt tuning trains.
 */
export function addLoss(graph: Graph, opset: number, logits: Value, chosen: Loss | null, withGradient: boolean, precedingLogits?: Value): LossNodes {
  const b = new GradBuilder(graph, opset, "/loss");
  const logitDims = b.dims(logits);
  const dtype = b.dtype(logits);
  if (!logitDims) throw new PeftcError("E_SHAPE_INFERENCE", `the loss needs the rank of "${logits.name}", which shape inference could not find.`, { value: logits.name });
  const loss = chosen ?? defaultLoss(logits, logitDims);
  return { ...lossFor(graph, b, logits, logitDims, dtype, loss, withGradient, precedingLogits), resolved: loss };
}

function lossFor(graph: Graph, b: GradBuilder, logits: Value, logitDims: Dim[], dtype: DataType, loss: Loss, withGradient: boolean, precedingLogits: Value | undefined): LossNodes {
  switch (loss.loss) {
    case "causal_lm":
    case "masked_lm": {
      if (logitDims.length !== 3) throw rankError(logits, logitDims, loss.loss, "[batch, sequence, vocab]", "sequenceClassification({ classes })");
      const labels = graph.addInput("labels", tensorType(DataType.INT64, [logitDims[0], logitDims[1]]));
      if (loss.loss === "causal_lm" && precedingLogits) return crossEntropy(b, precedingLogits, labels, dtype, false, withGradient);
      return crossEntropy(b, logits, labels, dtype, loss.loss === "causal_lm", withGradient);
    }
    case "sequence_classification": {
      if (logitDims.length !== 2) throw rankError(logits, logitDims, loss.loss, "[batch, classes]", "causalLM()");
      if (typeof logitDims[1] === "number" && logitDims[1] !== loss.classes) {
        throw new PeftcError("E_SPEC_MODEL", `sequenceClassification({ classes: ${loss.classes} }): the model's "${logits.name}" has ${logitDims[1]} classes. Set classes to ${logitDims[1]}.`, { value: logits.name });
      }
      const labels = graph.addInput("labels", tensorType(DataType.INT64, [logitDims[0]]));
      return crossEntropy(b, logits, labels, dtype, false, withGradient);
    }
    case "regression": {
      if (logitDims.length !== 2) throw rankError(logits, logitDims, loss.loss, "[batch, targets]", "causalLM()");
      if (typeof logitDims[1] === "number" && logitDims[1] !== loss.targets) {
        throw new PeftcError("E_SPEC_MODEL", `regression({ targets: ${loss.targets} }): the model's "${logits.name}" has ${logitDims[1]} outputs per sequence. Set targets to ${logitDims[1]}.`, { value: logits.name });
      }
      const labels = graph.addInput("labels", tensorType(dtype, [...logitDims]));
      return meanSquaredError(b, logits, labels, withGradient);
    }
  }
}

/** The loss a spec gets when it names none: causal LM for [batch, sequence, vocab] logits, classification for [batch, classes]. */
function defaultLoss(logits: Value, dims: Dim[]): Loss {
  if (dims.length === 3) return { loss: "causal_lm", site: undefined };
  if (dims.length === 2 && typeof dims[1] === "number") return { loss: "sequence_classification", classes: dims[1], site: undefined };
  throw new PeftcError(
    "E_SPEC_MODEL",
    `the model's "${logits.name}" is [${dims.map((dim) => dim ?? "?").join(", ")}], so no default loss fits it. Name one in the spec's train settings: causalLM(), maskedLM(), sequenceClassification({ classes }) or regression({ targets }).`,
    { value: logits.name },
  );
}

function rankError(logits: Value, dims: Dim[], loss: string, expected: string, other: string): PeftcError {
  return new PeftcError("E_SPEC_MODEL", `the ${loss} loss needs logits shaped ${expected}, but the model's "${logits.name}" is [${dims.map((dim) => dim ?? "?").join(", ")}]. Choose another loss, such as ${other}, in the spec's train settings.`, { value: logits.name });
}

function crossEntropy(b: GradBuilder, logits: Value, labels: Value, dtype: DataType, shift: boolean, withGradient: boolean): LossNodes {
  // Causal LM: position t predicts token t + 1, so the last logits and the first labels drop out.
  const scores = shift ? b.op("Slice", [logits, b.ints([0]), b.ints([-1]), b.ints([1])]) : logits;
  const targets = shift ? b.op("Slice", [labels, b.ints([1]), b.ints([TO_END]), b.ints([1])]) : labels;
  const counted = b.op("Not", [b.op("Equal", [targets, b.intScalar(IGNORE_INDEX)])]);
  const weight = b.op("Cast", [counted], [attr.int("to", dtype)]);
  const safeTargets = b.op("Where", [counted, targets, b.intScalar(0)]);
  const logProbs = b.op("LogSoftmax", [scores], [attr.int("axis", -1)]);
  const picked = b.squeeze(b.op("GatherElements", [logProbs, b.unsqueeze(safeTargets, [-1])], [attr.int("axis", -1)]), [-1]);
  const total = b.op("ReduceSum", [b.op("Mul", [picked, weight])], [attr.int("keepdims", 0)]);
  const count = b.op("Max", [b.op("ReduceSum", [weight], [attr.int("keepdims", 0)]), b.scalar(1, dtype)]);
  const labelCount = b.op("ReduceSum", [weight], [attr.int("keepdims", 0)]);
  const loss = b.op("Neg", [b.op("Div", [total, count])]);
  if (!withGradient) return { loss, labels, count: labelCount, scores: logits };

  const classes = b.op("Gather", [b.shape(logits), b.intScalar(-1)]);
  const oneHot = b.op("OneHot", [safeTargets, classes, b.op("Cast", [b.ints([0, 1])], [attr.int("to", dtype)])], [attr.int("axis", -1)]);
  const probs = b.op("Exp", [logProbs]);
  const perToken = b.op("Div", [b.unsqueeze(weight, [-1]), count]);
  const scoresGrad = b.op("Mul", [b.op("Sub", [probs, oneHot]), perToken]);
  // The dropped last position gets a zero gradient.
  const logitsGrad = shift ? b.op("Pad", [scoresGrad, b.ints([0, 0, 0, 0, 1, 0])]) : scoresGrad;
  return { loss, labels, count: labelCount, logitsGrad: b.typed(logitsGrad, logits), scores: logits };
}

function meanSquaredError(b: GradBuilder, predictions: Value, targets: Value, withGradient: boolean): LossNodes {
  const dtype = b.dtype(predictions);
  const error = b.op("Sub", [predictions, targets]);
  const loss = b.op("ReduceMean", [b.op("Mul", [error, error])], [attr.int("keepdims", 0)]);
  const count = b.op("Cast", [b.op("Size", [error])], [attr.int("to", dtype)]);
  if (!withGradient) return { loss, labels: targets, count, scores: predictions };
  const logitsGrad = b.op("Div", [b.op("Mul", [error, b.scalar(2, dtype)]), count]);
  return { loss, labels: targets, count, logitsGrad: b.typed(logitsGrad, predictions), scores: predictions };
}
