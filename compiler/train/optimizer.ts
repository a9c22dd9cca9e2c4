import { attr } from "../ir/attribute";
import type { Graph } from "../ir/graph";
import { tensorType } from "../ir/types";
import type { Value } from "../ir/value";
import { GradBuilder } from "../autodiff/grad-builder";
import type { Optimizer } from "../dsl/training";
import { DataType } from "../onnx/dtype";

/** A trainable tensor as the optimizer step reads it. */
export interface StepParameter {
  name: string;
  value: Value;
  grad: Value;
  shape: number[];
  dtype: DataType;
  /** Whether weight decay applies, which is off for biases and norm weights unless the spec sets `decayBiasesAndNorms`. */
  decay: boolean;
}

/** Names of the optimizer state inputs of one parameter (`<param>.m`, `<param>.v`, or `<param>.momentum`). */
export function stateNames(optimizer: Optimizer, parameter: string): string[] {
  if (optimizer.optimizer === "adamw") return [`${parameter}.m`, `${parameter}.v`];
  return optimizer.momentum > 0 ? [`${parameter}.momentum`] : [];
}

/** Graph outputs of one optimizer step: updated tensors and state, by name. */
export interface StepOutputs {
  updated: Map<string, Value>;
  gradNorm: Value;
}

/**
 * Adds one optimizer step with PyTorch's definitions. Inputs it creates:
 * `lr` (float scalar, so schedules live in the runtime), `step` (int64
 * scalar, the 1-based number of this update, for Adam's bias correction)
 * and each parameter's state. With `clipGradNorm`, gradients are first
 * scaled by min(1, max_norm / (‖g‖ + 1e-6)) over all parameters, as
 * `torch.nn.utils.clip_grad_norm_` does. Returns `<param>.new` and
 * `<state>.new` values, and the global gradient norm before clipping.
 */
export function addOptimizerStep(graph: Graph, opset: number, optimizer: Optimizer, parameters: readonly StepParameter[], clipGradNorm: number | null): StepOutputs {
  const b = new GradBuilder(graph, opset, "/optimizer");
  const lr = graph.addInput("lr", tensorType(DataType.FLOAT, []));
  const step = graph.addInput("step", tensorType(DataType.INT64, []));
  const updated = new Map<string, Value>();

  const squares = parameters.map((parameter) => b.op("ReduceSum", [b.op("Mul", [castFloat(b, parameter.grad, parameter.dtype), castFloat(b, parameter.grad, parameter.dtype)])], [attr.int("keepdims", 0)]));
  const gradNorm = b.op("Sqrt", [squares.length === 1 ? squares[0] : b.op("Sum", squares)]);
  let clipScale: Value | undefined;
  if (clipGradNorm !== null) {
    const coefficient = b.op("Div", [b.scalar(clipGradNorm, DataType.FLOAT), b.op("Add", [gradNorm, b.scalar(1e-6, DataType.FLOAT)])]);
    clipScale = b.op("Min", [coefficient, b.scalar(1, DataType.FLOAT)]);
  }

  const stepFloat = b.op("Cast", [step], [attr.int("to", DataType.FLOAT)]);
  for (const parameter of parameters) {
    b.scope = parameter.name;
    // The step runs in float32 whatever the parameter's type, and casts back at the end.
    const p = castFloat(b, parameter.value, parameter.dtype);
    let g = castFloat(b, parameter.grad, parameter.dtype);
    if (clipScale) g = b.op("Mul", [g, clipScale]);
    const states = stateNames(optimizer, parameter.name).map((name) => graph.addInput(name, tensorType(DataType.FLOAT, [...parameter.shape])));
    let next: Value;
    if (optimizer.optimizer === "adamw") {
      const [m, v] = states;
      const [beta1, beta2] = optimizer.betas;
      const decayed = parameter.decay && optimizer.weightDecay > 0 ? b.op("Mul", [p, b.op("Sub", [b.scalar(1, DataType.FLOAT), b.op("Mul", [lr, b.scalar(optimizer.weightDecay, DataType.FLOAT)])])]) : p;
      const mNext = b.op("Add", [b.op("Mul", [m, b.scalar(beta1, DataType.FLOAT)]), b.op("Mul", [g, b.scalar(1 - beta1, DataType.FLOAT)])]);
      const vNext = b.op("Add", [b.op("Mul", [v, b.scalar(beta2, DataType.FLOAT)]), b.op("Mul", [b.op("Mul", [g, g]), b.scalar(1 - beta2, DataType.FLOAT)])]);
      const correction1 = b.op("Sub", [b.scalar(1, DataType.FLOAT), b.op("Pow", [b.scalar(beta1, DataType.FLOAT), stepFloat])]);
      const correction2 = b.op("Sub", [b.scalar(1, DataType.FLOAT), b.op("Pow", [b.scalar(beta2, DataType.FLOAT), stepFloat])]);
      const denominator = b.op("Add", [b.op("Div", [b.op("Sqrt", [vNext]), b.op("Sqrt", [correction2])]), b.scalar(optimizer.eps, DataType.FLOAT)]);
      const stepSize = b.op("Div", [lr, correction1]);
      next = b.op("Sub", [decayed, b.op("Mul", [stepSize, b.op("Div", [mNext, denominator])])]);
      updated.set(`${parameter.name}.m.new`, mNext);
      updated.set(`${parameter.name}.v.new`, vNext);
    } else {
      if (parameter.decay && optimizer.weightDecay > 0) g = b.op("Add", [g, b.op("Mul", [p, b.scalar(optimizer.weightDecay, DataType.FLOAT)])]);
      if (optimizer.momentum > 0) {
        // PyTorch starts the buffer at the first gradient; a zero buffer times momentum plus g is the same.
        const buffer = b.op("Add", [b.op("Mul", [states[0], b.scalar(optimizer.momentum, DataType.FLOAT)]), g]);
        updated.set(`${parameter.name}.momentum.new`, buffer);
        g = optimizer.nesterov ? b.op("Add", [g, b.op("Mul", [buffer, b.scalar(optimizer.momentum, DataType.FLOAT)])]) : buffer;
      }
      next = b.op("Sub", [p, b.op("Mul", [lr, g])]);
    }
    updated.set(`${parameter.name}.new`, parameter.dtype === DataType.FLOAT ? next : b.op("Cast", [next], [attr.int("to", parameter.dtype)]));
  }
  b.scope = "";
  return { updated, gradNorm };
}

function castFloat(b: GradBuilder, value: Value, dtype: DataType): Value {
  return dtype === DataType.FLOAT ? value : b.op("Cast", [value], [attr.int("to", DataType.FLOAT)]);
}
