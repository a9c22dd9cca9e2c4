import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { buildBackward } from "../../../compiler/autodiff/backward";
import { type Attribute, attr } from "../../../compiler/ir/attribute";
import type { Graph } from "../../../compiler/ir/graph";
import { inferShapes } from "../../../compiler/ir/infer";
import { saveModel } from "../../../compiler/ir/io";
import { Model } from "../../../compiler/ir/model";
import { tensorType } from "../../../compiler/ir/types";
import type { Value } from "../../../compiler/ir/value";
import { DataType } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { openSession } from "../../helpers/ort";
import { makeTempDir } from "../../helpers/temp";

/** One input of a gradient check: its shape, and its values (random in [-1, 1) when absent). */
export interface CheckInput {
  name: string;
  dims: number[];
  values?: number[];
  /** Checks this input's gradient. Default true for float inputs. */
  check?: boolean;
  /** Integer and boolean inputs (indices, shapes, masks) are fed as given and never checked. */
  dtype?: "float" | "int64" | "int32" | "bool";
}

/** Builds the op under test from the graph inputs and returns the output the loss reads. */
export type BuildOp = (ops: OpBuilder, inputs: Record<string, Value>) => Value;

/** Adds nodes to the model under test. */
export class OpBuilder {
  constructor(
    readonly graph: Graph,
    readonly dtype: DataType,
  ) {}

  op(opType: string, inputs: (Value | undefined)[], attributes: Attribute[] = [], outputs = 1, domain?: string): Value {
    return this.graph.addNode({ opType, inputs, attributes, outputs, domain }).outputs[0];
  }

  node(opType: string, inputs: (Value | undefined)[], attributes: Attribute[] = [], outputs = 1, domain?: string): Value[] {
    return [...this.graph.addNode({ opType, inputs, attributes, outputs, domain }).outputs];
  }

  ints(values: number[]): Value {
    return this.graph.addInitializer(Tensor.fromArray("ints", DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  }

  scalar(value: number): Value {
    return this.graph.addInitializer(Tensor.fromArray("scalar", this.dtype, [], this.dtype === DataType.DOUBLE ? Float64Array.of(value) : Float32Array.of(value)));
  }

  constant(dims: number[], values: number[]): Value {
    return this.graph.addInitializer(Tensor.fromArray("constant", this.dtype, dims, this.dtype === DataType.DOUBLE ? Float64Array.from(values) : Float32Array.from(values)));
  }
}

export interface GradCheckOptions {
  /** float64 (default) where onnxruntime's CPU kernels support the op; float32 otherwise. */
  dtype?: "float64" | "float32";
  /** Central-difference step. Default 1e-6 in float64, 1e-2 in float32. */
  epsilon?: number;
  opset?: number;
  /** Opset imports of other domains, such as `{ "com.microsoft": 1 }` for onnxruntime's contrib ops. */
  domains?: Record<string, number>;
  seed?: number;
}

export interface GradCheckResult {
  /** Largest |analytic - numeric| / max(1, |numeric|) over every checked element. */
  maxError: number;
  /** Analytic gradients by input name, for extra checks. */
  analytic: Record<string, number[]>;
  numeric: Record<string, number[]>;
}

/** Element types of the inputs that are fed as given. */
const FIXED_TYPES = { int64: DataType.INT64, int32: DataType.INT32, bool: DataType.BOOL } as const;

function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32) * 2 - 1;
  };
}

/**
 * Checks the backward pass of an op against central finite differences,
 * both computed by onnxruntime: the loss is sum(output · cotangent) with a
 * random cotangent, so every output element's gradient matters.
 */
export async function gradCheck(inputs: CheckInput[], build: BuildOp, options: GradCheckOptions = {}): Promise<GradCheckResult> {
  const dtype = options.dtype === "float32" ? DataType.FLOAT : DataType.DOUBLE;
  const epsilon = options.epsilon ?? (dtype === DataType.DOUBLE ? 1e-6 : 1e-2);
  const next = random(options.seed ?? 11);
  const values: Record<string, number[]> = {};
  for (const input of inputs) values[input.name] = input.values ?? Array.from({ length: input.dims.reduce((a, b) => a * b, 1) }, next);

  const dir = makeTempDir("peftc-gradcheck-");
  const makeModel = (withBackward: boolean): { model: Model; checked: string[] } => {
    const model = new Model({ irVersion: 9, opsetImports: new Map([["", options.opset ?? 17], ...Object.entries(options.domains ?? {})]), graphName: "gradcheck" });
    const graph = model.graph;
    const ops = new OpBuilder(graph, dtype);
    const graphInputs: Record<string, Value> = {};
    for (const input of inputs) {
      const elemType = input.dtype && input.dtype !== "float" ? FIXED_TYPES[input.dtype] : dtype;
      graphInputs[input.name] = graph.addInput(input.name, tensorType(elemType, input.dims));
    }
    const output = build(ops, graphInputs);
    inferShapes(model);
    const outputShape = output.type?.kind === "tensor" ? output.type.shape : undefined;
    const cotangent = graph.addInput("cotangent", tensorType(dtype, outputShape ? [...outputShape] : undefined));
    const loss = ops.op("ReduceSum", [ops.op("Mul", [output, cotangent])], [attr.int("keepdims", 0)]);
    graph.addOutput(output);
    graph.addOutput(loss);
    const checked = inputs.filter((input) => (input.dtype ?? "float") === "float" && input.check !== false).map((input) => input.name);
    if (withBackward) {
      inferShapes(model);
      const grads = buildBackward(model, new Map([[loss, ops.scalar(1)]]), checked.map((name) => graphInputs[name]));
      for (const name of checked) {
        const grad = grads.get(graphInputs[name])!;
        const named = graph.addNode({ opType: "Identity", inputs: [grad], outputs: [`grad_${name}`] }).outputs[0];
        graph.addOutput(named);
      }
    }
    return { model, checked };
  };

  const feed = (name: string, data: number[], dims: number[], kind: CheckInput["dtype"]): ort.Tensor => {
    if (kind === "int64") return new ort.Tensor("int64", BigInt64Array.from(data.map(BigInt)), dims);
    if (kind === "int32") return new ort.Tensor("int32", Int32Array.from(data), dims);
    if (kind === "bool") return new ort.Tensor("bool", Uint8Array.from(data), dims);
    return dtype === DataType.DOUBLE ? new ort.Tensor("float64", Float64Array.from(data), dims) : new ort.Tensor("float32", Float32Array.from(data), dims);
  };

  const forward = makeModel(false);
  saveModel(forward.model, path.join(dir, "forward.onnx"));
  const forwardSession = await openSession(path.join(dir, "forward.onnx"));
  const feeds = (overrides: Record<string, number[]> = {}): Record<string, ort.Tensor> =>
    Object.fromEntries(inputs.map((input) => [input.name, feed(input.name, overrides[input.name] ?? values[input.name], input.dims, input.dtype)]));
  const outputType = forward.model.graph.outputs[0].type;
  const outputDims = outputType?.kind === "tensor" ? outputType.shape : undefined;
  if (!outputDims || !outputDims.every((dim): dim is number => typeof dim === "number")) throw new Error(`gradCheck: the op's output shape must be static, got ${JSON.stringify(outputDims)}`);
  const cotangentValues = Array.from({ length: outputDims.reduce((a, b) => a * b, 1) }, next);
  const cotangent = feed("cotangent", cotangentValues, outputDims, "float");
  const lossName = forward.model.graph.outputs[1].name;
  const lossAt = async (overrides: Record<string, number[]>): Promise<number> => Number(((await forwardSession.run({ ...feeds(overrides), cotangent }))[lossName] as ort.Tensor).data[0]);

  const backward = makeModel(true);
  saveModel(backward.model, path.join(dir, "backward.onnx"));
  const backwardSession = await openSession(path.join(dir, "backward.onnx"));
  const results = await backwardSession.run({ ...feeds(), cotangent });

  const analytic: Record<string, number[]> = {};
  const numeric: Record<string, number[]> = {};
  let maxError = 0;
  for (const name of backward.checked) {
    analytic[name] = Array.from((results[`grad_${name}`] as ort.Tensor).data as Float64Array, Number);
    numeric[name] = [];
    for (let i = 0; i < values[name].length; i++) {
      const plus = [...values[name]];
      const minus = [...values[name]];
      plus[i] += epsilon;
      minus[i] -= epsilon;
      const slope = ((await lossAt({ [name]: plus })) - (await lossAt({ [name]: minus }))) / (2 * epsilon);
      numeric[name].push(slope);
      maxError = Math.max(maxError, Math.abs(analytic[name][i] - slope) / Math.max(1, Math.abs(slope)));
    }
  }
  await forwardSession.release();
  await backwardSession.release();
  return { maxError, analytic, numeric };
}
