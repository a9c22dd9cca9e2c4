import * as ort from "onnxruntime-node";
import { PeftcError } from "../compiler/errors";
import { DataType } from "../compiler/onnx/dtype";
import { encodeModelProto } from "../compiler/onnx/model-file";
import { Model } from "../compiler/ir/model";
import { modelToProto } from "../compiler/ir/to-proto";
import { tensorType } from "../compiler/ir/types";
import type { ExecutionDevice } from "./session";

/** ONNX element types of the tensors a session may leave on the device. */
const ELEMENT_TYPES: Partial<Record<ort.Tensor.Type, DataType>> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int32: DataType.INT32,
  int64: DataType.INT64,
};

/**
 * Builds a graph that passes `types.length` tensors of any shape through
 * Identity nodes: run on a device, it copies its inputs to wherever the
 * session puts its outputs.
 */
function identityGraph(types: readonly ort.Tensor.Type[], ranks: readonly number[]): Uint8Array {
  const model = new Model({ irVersion: 8, opsetImports: new Map([["", 17]]), graphName: "device_copy" });
  types.forEach((type, i) => {
    const dtype = ELEMENT_TYPES[type];
    if (dtype === undefined) throw new PeftcError("E_DEVICE", `cannot copy a ${type} tensor between host and device: only ${Object.keys(ELEMENT_TYPES).join(", ")} tensors can be copied. Run on the CPU provider instead.`);
    const shape = Array.from({ length: ranks[i] }, (_, axis) => `d${i}_${axis}`);
    const input = model.graph.addInput(`in${i}`, tensorType(dtype, shape));
    const output = model.graph.addNode({ opType: "Identity", name: `copy${i}`, inputs: [input], outputs: [`out${i}`] }).outputs[0];
    output.type = tensorType(dtype, shape);
    model.graph.addOutput(output);
  });
  return encodeModelProto(modelToProto(model));
}

/**
 * Moves tensors between host memory and a device's buffers with identity
 * runs on that device. onnxruntime-node 1.31 hands out WebGPU outputs whose
 * `getData()` is not implemented (the call aborts the process), and it has
 * no upload call. A run is the only way across. Its inputs may live on
 * either side, and its preferred output location decides where the copies go.
 * Sessions are kept per list of element types and ranks, because a trainer
 * or generator moves the same tensors again and again.
 */
export class DeviceCopier {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  constructor(private readonly device: ExecutionDevice) {}

  /** Returns host copies of `tensors`. Host tensors are returned as they are. */
  toHost(tensors: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    return this.copy(tensors, "cpu");
  }

  /**
   * Returns device copies of `tensors`, which a session on the same device
   * reads without a transfer. Tensors already there are returned as they
   * are. The caller disposes the copies.
   */
  toDevice(tensors: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    return this.copy(tensors, "gpu-buffer");
  }

  async release(): Promise<void> {
    for (const session of this.sessions.values()) await (await session).release();
    this.sessions.clear();
  }

  private async copy(tensors: Record<string, ort.Tensor>, target: "cpu" | "gpu-buffer"): Promise<Record<string, ort.Tensor>> {
    const moving = Object.entries(tensors).filter(([, tensor]) => tensor.location !== target);
    if (moving.length === 0) return tensors;
    const types = moving.map(([, tensor]) => tensor.type);
    const ranks = moving.map(([, tensor]) => tensor.dims.length);
    const session = await this.session(types, ranks, target);
    const outputs = await session.run(Object.fromEntries(moving.map(([, tensor], i) => [`in${i}`, tensor])));
    const copies = new Map(moving.map(([name], i) => [name, outputs[`out${i}`] as ort.Tensor]));
    return Object.fromEntries(Object.entries(tensors).map(([name, tensor]) => [name, copies.get(name) ?? tensor]));
  }

  private session(types: readonly ort.Tensor.Type[], ranks: readonly number[], target: "cpu" | "gpu-buffer"): Promise<ort.InferenceSession> {
    const key = `${target}|${types.map((type, i) => `${type}:${ranks[i]}`).join(",")}`;
    let session = this.sessions.get(key);
    if (!session) {
      session = ort.InferenceSession.create(identityGraph(types, ranks), { executionProviders: [this.device], preferredOutputLocation: target, logSeverityLevel: 3 });
      this.sessions.set(key, session);
    }
    return session;
  }
}
