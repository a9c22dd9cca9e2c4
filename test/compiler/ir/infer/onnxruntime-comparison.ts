import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { InferenceReport, evaluateDimension, inferShapes, unsupportedOpTypes } from "../../../../compiler/ir/infer";
import { loadModel, saveModel } from "../../../../compiler/ir/io";
import type { Graph } from "../../../../compiler/ir/graph";
import type { Model } from "../../../../compiler/ir/model";
import { Dim, ValueType, formatType } from "../../../../compiler/ir/types";
import { DataType, dataTypeName } from "../../../../compiler/onnx/dtype";
import { float16ToFloat32, float32ToFloat16 } from "../../../../compiler/onnx/half";
import { encodeModelProto, readModelProto } from "../../../../compiler/onnx/model-file";
import { openSession } from "../../../helpers/ort";
import { makeTempDir } from "../../../helpers/temp";

/**
 * Checks inferred shapes against onnxruntime. Every node output of the main
 * graph becomes a graph output of a copy of the model, and onnxruntime runs
 * the copy with concrete sizes for the symbolic dimensions. Each inferred
 * shape, with those sizes substituted, must equal the shape onnxruntime
 * returns, and each element type the type it returns.
 */

/** Concrete sizes and input values for one model. */
export interface ComparisonCase {
  /** Size bound to each symbolic dimension name the inferred or declared types use. */
  sizes: Record<string, number>;
  /** Values of specific inputs, by name (control scalars of generation graphs). */
  values?: Record<string, number[]>;
  /** Value of the first position id: the past length for decoders with a cache. */
  positionStart?: number;
  /** Token ids are drawn below this bound (the smallest vocabulary among the corpus models is 10). */
  vocabulary?: number;
}

export interface Comparison {
  report: InferenceReport;
  /** Number of values whose shape and type were compared. */
  compared: number;
  /** One line per value whose inferred type disagrees with onnxruntime. */
  mismatches: string[];
}

const ORT_TYPES: Partial<Record<DataType, ort.Tensor.Type>> = {
  [DataType.FLOAT]: "float32",
  [DataType.FLOAT16]: "float16",
  [DataType.DOUBLE]: "float64",
  [DataType.INT64]: "int64",
  [DataType.INT32]: "int32",
  [DataType.INT16]: "int16",
  [DataType.INT8]: "int8",
  [DataType.UINT8]: "uint8",
  [DataType.UINT16]: "uint16",
  [DataType.UINT32]: "uint32",
  [DataType.UINT64]: "uint64",
  [DataType.BOOL]: "bool",
  [DataType.STRING]: "string",
};

export function evaluateShape(shape: readonly Dim[], sizes: ReadonlyMap<string, number>): number[] {
  return shape.map((dim) => {
    if (dim === null) throw new Error("a dimension is unknown");
    return typeof dim === "number" ? dim : evaluateDimension(dim, sizes);
  });
}

/** Integer input values: masks of ones, positions from `positionStart`, token type 0, token ids below the vocabulary. */
function integerValue(name: string, index: number, shape: readonly number[], options: ComparisonCase): number {
  const lower = name.toLowerCase();
  if (lower.includes("mask")) return 1;
  if (lower.includes("position")) return (options.positionStart ?? 0) + (index % (shape[shape.length - 1] || 1));
  if (lower.includes("token_type") || lower.includes("segment")) return 0;
  return (index * 3 + 1) % (options.vocabulary ?? 10);
}

function makeTensor(name: string, type: ValueType | undefined, options: ComparisonCase, sizes: ReadonlyMap<string, number>): ort.Tensor {
  if (type?.kind !== "tensor" || !type.shape) throw new Error(`input "${name}" has no tensor shape to feed`);
  const shape = evaluateShape(type.shape, sizes);
  const count = shape.reduce((product, dim) => product * dim, 1);
  const given = options.values?.[name];
  const value = (i: number): number => given?.[i] ?? integerValue(name, i, shape, options);
  const float = (i: number): number => given?.[i] ?? ((i % 7) - 3) / 10;
  switch (type.elemType) {
    case DataType.FLOAT:
      return new ort.Tensor("float32", Float32Array.from({ length: count }, (_, i) => float(i)), shape);
    case DataType.FLOAT16:
      return new ort.Tensor("float16", Uint16Array.from({ length: count }, (_, i) => float32ToFloat16(float(i))), shape);
    case DataType.INT64:
      return new ort.Tensor("int64", BigInt64Array.from({ length: count }, (_, i) => BigInt(value(i))), shape);
    case DataType.INT32:
      return new ort.Tensor("int32", Int32Array.from({ length: count }, (_, i) => value(i)), shape);
    case DataType.BOOL:
      return new ort.Tensor("bool", Uint8Array.from({ length: count }, () => 1), shape);
    default:
      throw new Error(`no feed rule for input "${name}" of type ${dataTypeName(type.elemType)}`);
  }
}

/** Builds feeds for a graph's inputs; inputs with an initializer default are left to it. */
export function makeFeeds(graph: Graph, options: ComparisonCase): Record<string, ort.Tensor> {
  const sizes = new Map(Object.entries(options.sizes));
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of graph.inputs) if (!input.isInitializer) feeds[input.name] = makeTensor(input.name, input.type, options, sizes);
  return feeds;
}

/** Compares one inferred type with the tensor onnxruntime returned; returns a mismatch line or undefined. */
export function compareValue(name: string, type: ValueType | undefined, actual: ort.Tensor | undefined, sizes: ReadonlyMap<string, number>): string | undefined {
  if (!actual) return `${name}: onnxruntime returned no value`;
  if (type?.kind !== "tensor") return `${name}: inferred ${formatType(type)}, onnxruntime returned ${actual.type}[${actual.dims.join(",")}]`;
  const expectedType = ORT_TYPES[type.elemType];
  let shape: number[] | string;
  try {
    shape = type.shape ? evaluateShape(type.shape, sizes) : "rank unknown";
  } catch (error) {
    shape = (error as Error).message;
  }
  const sameShape = Array.isArray(shape) && shape.length === actual.dims.length && shape.every((dim, i) => dim === actual.dims[i]);
  if (expectedType === actual.type && sameShape) return undefined;
  const evaluated = Array.isArray(shape) ? `[${shape.join(",")}]` : `(${shape})`;
  return `${name}: inferred ${formatType(type)} = ${evaluated}, onnxruntime returned ${actual.type}[${actual.dims.join(",")}]`;
}

/** Reads element `index` of an onnxruntime tensor as a number (float16 bits decoded). */
function elementOf(tensor: ort.Tensor, index: number): number {
  const raw = (tensor.data as ArrayLike<number | bigint>)[index];
  return tensor.type === "float16" ? float16ToFloat32(Number(raw)) : Number(raw);
}

/** Compares the element values inference determined with those onnxruntime computed; returns a mismatch line or undefined. */
export function compareKnownValues(name: string, values: readonly Dim[], actual: ort.Tensor | undefined, sizes: ReadonlyMap<string, number>): string | undefined {
  if (!actual) return undefined;
  if (values.length !== actual.size) return `${name}: inference knows ${values.length} values, onnxruntime returned ${actual.size}`;
  const wrong: string[] = [];
  values.forEach((value, i) => {
    if (value === null) return;
    const expected = typeof value === "number" ? value : evaluateDimension(value, sizes);
    const got = elementOf(actual, i);
    // Tensor.numbers() saturates int64 values past 2^53 (INT64_MAX "to the end" markers), so only the side is compared.
    const saturated = Math.abs(expected) >= Number.MAX_SAFE_INTEGER && Math.sign(expected) === Math.sign(got) && Math.abs(got) >= Number.MAX_SAFE_INTEGER;
    if (!saturated && Math.abs(expected - got) > 1e-6 * Math.max(1, Math.abs(expected))) wrong.push(`[${i}] ${value} = ${expected} but onnxruntime has ${got}`);
  });
  return wrong.length > 0 ? `${name}: ${wrong.join(", ")}` : undefined;
}

/** Saves a copy of `model` whose graph outputs include every node output, untyped so onnxruntime infers them. */
export function saveWithAllOutputs(model: Model, folder: string): { file: string; names: string[] } {
  const graph = model.graph;
  const names: string[] = [];
  for (const node of graph.nodes) {
    for (const output of node.outputs) {
      if (output.isOmitted) continue;
      names.push(output.name);
      if (output.isGraphOutput) continue;
      output.type = undefined;
      graph.addOutput(output);
    }
  }
  const file = path.join(folder, "model.onnx");
  saveModel(model, file);
  return { file, names };
}

/** Runs the comparison for one model file. */
export async function compareWithOnnxRuntime(file: string, options: ComparisonCase): Promise<Comparison> {
  const model = loadModel(file);
  const report = inferShapes(model);
  const { file: copy, names } = saveWithAllOutputs(loadModel(file), makeTempDir("peftc-infer-"));
  const session = await openSession(copy);
  try {
    const results = await session.run(makeFeeds(model.graph, options));
    const sizes = new Map(Object.entries(options.sizes));
    const mismatches: string[] = [];
    for (const name of names) {
      const mismatch = compareValue(name, model.graph.lookup(name)?.type, results[name] as ort.Tensor | undefined, sizes);
      if (mismatch) mismatches.push(mismatch);
    }
    for (const entry of report.inferred) {
      const mismatch = entry.values && compareKnownValues(entry.value, entry.values, results[entry.value] as ort.Tensor | undefined, sizes);
      if (mismatch) mismatches.push(mismatch);
    }
    return { report, compared: names.length, mismatches };
  } finally {
    await session.release();
  }
}

/**
 * Writes the graph held in attribute `attribute` of node `nodeName` as a
 * model of its own, with the outer graph's initializers, so onnxruntime can
 * run it outside its owner (a BeamSearch decoder runs only inside the
 * search loop otherwise).
 */
export function extractSubgraphModel(file: string, nodeName: string, attribute: string, opsets: Record<string, number>, folder: string): string {
  const proto = readModelProto(file);
  const owner = proto.graph?.node?.find((node) => node.name === nodeName);
  const graph = owner?.attribute?.find((each) => each.name === attribute)?.g;
  if (!graph) throw new Error(`${file}: node "${nodeName}" has no graph attribute "${attribute}"`);
  // The subgraph may read initializers of the outer graph (the BeamSearch decoder reads all its weights so).
  const own = new Set((graph.initializer ?? []).map((tensor) => tensor.name));
  const outer = (proto.graph?.initializer ?? []).filter((tensor) => !own.has(tensor.name));
  const standalone = {
    irVersion: proto.irVersion,
    opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
    graph: { ...graph, initializer: [...(graph.initializer ?? []), ...outer] },
  };
  const target = path.join(folder, "subgraph.onnx");
  fs.writeFileSync(target, encodeModelProto(standalone));
  return target;
}

/**
 * Infers the whole model, then checks the types inferred inside one
 * subgraph against onnxruntime running that subgraph on its own.
 */
export async function compareSubgraphWithOnnxRuntime(
  file: string,
  nodeName: string,
  attribute: string,
  opsets: Record<string, number>,
  options: ComparisonCase,
): Promise<Comparison> {
  const model = loadModel(file);
  const report = inferShapes(model);
  const subgraph = model.graph.nodes.find((node) => node.name === nodeName)?.getGraph(attribute);
  if (!subgraph) throw new Error(`${file}: node "${nodeName}" has no graph attribute "${attribute}"`);
  const folder = makeTempDir("peftc-infer-");
  const standalone = loadModel(extractSubgraphModel(file, nodeName, attribute, opsets, folder));
  const { file: copy, names } = saveWithAllOutputs(standalone, folder);
  const session = await openSession(copy);
  try {
    const results = await session.run(makeFeeds(subgraph, options));
    const sizes = new Map(Object.entries(options.sizes));
    const mismatches = names.flatMap((name) => compareValue(name, subgraph.lookup(name)?.type, results[name] as ort.Tensor | undefined, sizes) ?? []);
    return { report, compared: names.length, mismatches };
  } finally {
    await session.release();
  }
}

/** Asserts that inference covered every op, failed nowhere, met no conflicting declaration and agreed with onnxruntime. */
export function expectAgreement(result: Comparison): void {
  expect(unsupportedOpTypes(result.report)).toEqual([]);
  expect(result.report.failures).toEqual([]);
  expect(result.report.conflicts).toEqual([]);
  expect(result.mismatches).toEqual([]);
  expect(result.compared).toBeGreaterThan(0);
}

/** Runs a copy of `model` in onnxruntime with every node output as a graph output and returns all values by name. */
export async function runEveryValue(model: Model, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const { file } = saveWithAllOutputs(model, makeTempDir("peftc-infer-"));
  const session = await openSession(file);
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

/** Describes where a known size of `type` differs from an onnxruntime result; an unknown rank or dimension agrees with any. */
function knownSizeMismatch(type: ValueType | undefined, actual: ort.Tensor, sizes: ReadonlyMap<string, number>): string | undefined {
  if (type?.kind !== "tensor" || !type.shape) return undefined;
  const summary = `inferred ${formatType(type)}, onnxruntime returned [${actual.dims.join(",")}]`;
  if (type.shape.length !== actual.dims.length) return summary;
  for (const [axis, dim] of type.shape.entries()) {
    if (dim === null) continue;
    const size = typeof dim === "number" ? dim : evaluateDimension(dim, sizes);
    if (!Number.isInteger(size) || size < 0 || size !== actual.dims[axis]) return `axis ${axis}: ${summary}`;
  }
  return undefined;
}

/**
 * Infers one model from `build` and runs another in onnxruntime, then lists
 * each node output whose known sizes disagree with what onnxruntime
 * returned. Unlike compareWithOnnxRuntime, unknown sizes pass: this checks
 * that inference never guesses, where that checks that it is complete.
 */
export async function knownSizeDisagreements(build: () => Model, feeds: Record<string, ort.Tensor>, sizes: Record<string, number> = {}): Promise<string[]> {
  const inferred = build();
  inferShapes(inferred);
  const results = await runEveryValue(build(), feeds);
  const bound = new Map(Object.entries(sizes));
  const found: string[] = [];
  for (const node of inferred.graph.nodes) {
    for (const output of node.outputs) {
      const actual = results[output.name];
      const problem = actual && knownSizeMismatch(output.type, actual, bound);
      if (problem) found.push(`${output.name}: ${problem}`);
    }
  }
  return found;
}

/** Returns a float32 tensor of zeros with the given dimensions. */
export function zeros(dims: number[]): ort.Tensor {
  return new ort.Tensor("float32", new Float32Array(dims.reduce((product, dim) => product * dim, 1)), dims);
}
