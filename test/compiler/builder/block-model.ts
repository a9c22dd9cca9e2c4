import { ModelBuilder, Scope } from "../../../compiler/builder/model-builder";
import { Model } from "../../../compiler/ir/model";
import { Value } from "../../../compiler/ir/value";
import { DataType } from "../../../compiler/onnx/dtype";
import { createSession, floatTensor, run } from "../../fixtures/run-model";

/** A one-input, one-output model around a builder block, for numeric checks in onnxruntime. */
export interface BlockModel {
  model: Model;
  builder: ModelBuilder;
  /** Runs the model on float32 input `x` of the given dims and returns output `y`. */
  run(x: Float32Array, dims: readonly number[]): Promise<{ data: Float32Array; dims: readonly number[] }>;
  /** Returns the float32 values of an initializer. */
  weight(name: string): Float32Array;
}

/** Builds `y = block(x)` for a float32 input of rank `rank` with symbolic dims. */
export function blockModel(rank: number, block: (scope: Scope, x: Value) => Value, options: { opset?: number; seed?: number } = {}): BlockModel {
  const builder = new ModelBuilder({ opset: options.opset ?? 17, seed: options.seed ?? 0 });
  const x = builder.input("x", DataType.FLOAT, Array.from({ length: rank }, (_, i) => `d${i}`));
  builder.output(block(builder.root, x), "y", DataType.FLOAT);
  const model = builder.finish();
  return {
    model,
    builder,
    run: async (input, dims) => {
      const session = await createSession(model);
      return (await run(session, { x: floatTensor(input, dims) })).y;
    },
    weight: (name) => {
      const value = model.graph.initializers.get(name);
      if (!value) throw new Error(`no initializer "${name}"; have ${[...model.graph.initializers.keys()].join(", ")}`);
      return value.initializer!.data() as Float32Array;
    },
  };
}

/**
 * Returns `count` float32 test inputs in [-1, 1) from a linear congruential
 * sequence, which keeps them independent of the generator under test.
 */
export function sampleInput(count: number, seed = 1): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}
