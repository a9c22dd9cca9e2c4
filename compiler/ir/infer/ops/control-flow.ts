import { DataType } from "../../../onnx/dtype";
import { Dim, TensorType, ValueType, formatType } from "../../types";
import { InferenceContext, TypedData } from "../context";
import { sameDim } from "../dims";
import { RuleDefinition } from "../registry";
import { scalarFromInput } from "./common";

/**
 * Control flow: If, Loop and Scan. Each infers its subgraphs with the types
 * that flow into them, then derives the node's outputs from the subgraph
 * outputs.
 */

/** Returns a type that covers both: equal dimensions stay and different ones become unknown. */
function generalize(ctx: InferenceContext, a: ValueType | undefined, b: ValueType | undefined, what: string): ValueType | undefined {
  if (!a || !b) return undefined;
  if (a.kind !== "tensor" || b.kind !== "tensor") return a.kind === b.kind ? a : ctx.fail(`${what}: types ${formatType(a)} and ${formatType(b)} differ in kind`);
  if (a.elemType !== b.elemType) ctx.fail(`${what}: element types of ${formatType(a)} and ${formatType(b)} differ`);
  let shape: Dim[] | undefined;
  if (a.shape && b.shape && a.shape.length === b.shape.length) shape = a.shape.map((dim, i) => (sameDim(dim, b.shape![i]) ? dim : null));
  return { kind: "tensor", elemType: a.elemType, shape };
}

function requireGraph(ctx: InferenceContext, name: string) {
  const graph = ctx.graph(name);
  if (!graph) ctx.fail(`attribute "${name}" is missing`, "Add the subgraph to the node.");
  return graph;
}

/** If: each output covers both branches; with a known condition only the taken branch counts. */
function ifRule(ctx: InferenceContext): void {
  const thenOutputs = ctx.inferSubgraph(requireGraph(ctx, "then_branch"), []);
  const elseOutputs = ctx.inferSubgraph(requireGraph(ctx, "else_branch"), []);
  if (thenOutputs.length !== ctx.outputCount || elseOutputs.length !== ctx.outputCount) {
    ctx.fail(`the branches return ${thenOutputs.length} and ${elseOutputs.length} values for ${ctx.outputCount} outputs`);
  }
  const condition = scalarFromInput(ctx, 0);
  for (let i = 0; i < ctx.outputCount; i++) {
    if (typeof condition === "number") {
      const taken = condition !== 0 ? thenOutputs[i] : elseOutputs[i];
      if (taken.type) ctx.setOutputType(i, taken.type, taken.data);
      continue;
    }
    const type = generalize(ctx, thenOutputs[i].type, elseOutputs[i].type, `output ${i}`);
    if (type) ctx.setOutputType(i, type);
  }
}

const SCALAR_INT64: TensorType = { kind: "tensor", elemType: DataType.INT64, shape: [] };
const SCALAR_BOOL: TensorType = { kind: "tensor", elemType: DataType.BOOL, shape: [] };

/**
 * Loop: the body gets (iteration, condition, carried values) and returns
 * (condition, carried values, scan outputs). When a carried value's shape
 * changes in the body, the body is inferred again with the differing
 * dimensions unknown. Scan outputs gain a leading axis of the trip count,
 * known only when M is known and there is no condition input.
 */
function loopRule(ctx: InferenceContext): void {
  const body = requireGraph(ctx, "body");
  const carriedCount = ctx.inputCount - 2;
  let carried: TypedData[] = Array.from({ length: carriedCount }, (_, i) => ({ type: ctx.inputValueType(2 + i), data: ctx.data(2 + i) }));
  let outputs = ctx.inferSubgraph(body, [{ type: SCALAR_INT64 }, { type: SCALAR_BOOL }, ...carried]);
  const widened = carried.map((each, i) => generalize(ctx, each.type, outputs[1 + i]?.type, `carried value ${i}`));
  if (widened.some((type, i) => JSON.stringify(type) !== JSON.stringify(carried[i].type))) {
    carried = widened.map((type) => ({ type }));
    outputs = ctx.inferSubgraph(body, [{ type: SCALAR_INT64 }, { type: SCALAR_BOOL }, ...carried]);
  }
  for (let i = 0; i < carriedCount; i++) {
    const type = generalize(ctx, carried[i].type, outputs[1 + i]?.type, `carried value ${i}`);
    if (type) ctx.setOutputType(i, type);
  }
  const given = ctx.hasInput(0) && !ctx.hasInput(1) ? (scalarFromInput(ctx, 0) ?? null) : null;
  // A negative or fractional trip count is left unknown rather than used as a dimension.
  const tripCount = typeof given === "number" && !(Number.isInteger(given) && given >= 0) ? null : given;
  for (let i = carriedCount; i < ctx.outputCount; i++) {
    const scanned = outputs[1 + i]?.type;
    if (scanned?.kind !== "tensor") continue;
    ctx.setOutput(i, scanned.elemType, scanned.shape && [tripCount, ...scanned.shape]);
  }
}

/**
 * Scan (opset 9 and later): inputs are N state values, then M scan inputs.
 * The body receives the states and one slice of each scan input (the scan
 * axis removed). It returns N states, then K per-iteration outputs, which
 * are stacked on their scan_output_axes.
 */
function scanRule(ctx: InferenceContext): void {
  const body = requireGraph(ctx, "body");
  const scanCount = ctx.requireInt("num_scan_inputs");
  const stateCount = ctx.inputCount - scanCount;
  const inputAxes = ctx.ints("scan_input_axes") ?? new Array<number>(scanCount).fill(0);
  const states: TypedData[] = Array.from({ length: stateCount }, (_, i) => ({ type: ctx.inputValueType(i) }));
  let sequenceLength: Dim = null;
  const slices: TypedData[] = inputAxes.map((axis, j) => {
    const input = ctx.input(stateCount + j);
    if (!input.shape) return { type: { kind: "tensor", elemType: input.elemType } };
    const at = ctx.axis(axis, input.shape.length, "scan input axis");
    if (j === 0) sequenceLength = input.shape[at];
    return { type: { kind: "tensor", elemType: input.elemType, shape: input.shape.filter((_, i) => i !== at) } };
  });
  const outputs = ctx.inferSubgraph(body, [...states, ...slices]);
  const outputAxes = ctx.ints("scan_output_axes");
  for (let i = 0; i < ctx.outputCount; i++) {
    const type = outputs[i]?.type;
    if (!type) continue;
    if (i < stateCount || type.kind !== "tensor" || !type.shape) {
      ctx.setOutputType(i, type);
      continue;
    }
    const shape = [...type.shape];
    shape.splice(ctx.axis(outputAxes?.[i - stateCount] ?? 0, shape.length + 1, "scan output axis"), 0, sequenceLength);
    ctx.setOutput(i, type.elemType, shape);
  }
}

export const controlFlowRules: RuleDefinition[] = [
  { opType: "If", since: 1, infer: ifRule },
  { opType: "Loop", since: 1, infer: loopRule },
  // Scan-8 has a batch axis and a sequence_lens input, which this rule does not model.
  { opType: "Scan", since: 9, infer: scanRule },
];
