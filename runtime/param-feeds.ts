import * as ort from "onnxruntime-node";
import { PeftcError } from "../compiler/errors";
import { readSafetensors } from "../compiler/emit/safetensors";
import { DataType, dataTypeName } from "../compiler/onnx/dtype";
import { float32ToFloat16 } from "../compiler/onnx/half";
import type { Tensor } from "../compiler/onnx/tensor";

/** Graph feeds by input name. */
export type Feeds = Record<string, ort.Tensor>;

/** Converts one decoded safetensors tensor to an onnxruntime feed. */
function toFeed(tensor: Tensor, file: string): ort.Tensor {
  const dims = [...tensor.dims];
  const data = tensor.data();
  switch (tensor.dtype) {
    case DataType.FLOAT:
      return new ort.Tensor("float32", Float32Array.from(data as ArrayLike<number>), dims);
    case DataType.FLOAT16:
      // data() widens float16 to float32, and onnxruntime-node takes float16 as bit patterns.
      return new ort.Tensor("float16", Uint16Array.from(data as Float32Array, float32ToFloat16), dims);
    case DataType.INT64:
      return new ort.Tensor("int64", BigInt64Array.from(data as ArrayLike<bigint>), dims);
    case DataType.INT32:
      return new ort.Tensor("int32", Int32Array.from(data as ArrayLike<number>), dims);
    default:
      throw new PeftcError("E_SAFETENSORS", `tensor "${tensor.name}" in ${file} is ${dataTypeName(tensor.dtype)}, but the generator feeds float32, float16, int64 and int32 parameters only.`, { file, tensor: tensor.name });
  }
}

/** Reads a safetensors file of parameters (params.safetensors or a checkpoint) as feeds by tensor name. */
export function loadParamFeeds(file: string): Feeds {
  const feeds: Feeds = {};
  for (const [name, tensor] of readSafetensors(file).tensors) feeds[name] = toFeed(tensor, file);
  return feeds;
}

/**
 * prefix.onnx of an artifact folder: computes the key and value prefixes
 * that infer.onnx reads from a prefix tuning's projection parameters. The
 * result is kept until the parameter tensors change, so the projection
 * runs once per adapter, not once per generate call.
 */
export class PrefixFolding {
  private last: { inputs: ort.Tensor[]; folded: Feeds } | null = null;

  private constructor(private readonly session: ort.InferenceSession) {}

  static async open(file: string): Promise<PrefixFolding> {
    return new PrefixFolding(await ort.InferenceSession.create(file));
  }

  /** Parameter names prefix.onnx reads. */
  get inputs(): readonly string[] {
    return this.session.inputNames;
  }

  /** Prefix names prefix.onnx writes, which are inputs of infer.onnx. */
  get outputs(): readonly string[] {
    return this.session.outputNames;
  }

  /** Returns the prefixes for `params`, which must contain every input of prefix.onnx. */
  async fold(params: Feeds): Promise<Feeds> {
    const inputs = this.inputs.map((name) => {
      const tensor = params[name];
      if (!tensor) throw new PeftcError("E_GENERATE", `no value for parameter ${name}, which prefix.onnx needs to compute the prefixes: pass a params file that contains it.`, { tensor: name });
      return tensor;
    });
    if (this.last && this.last.inputs.every((tensor, i) => tensor === inputs[i])) return this.last.folded;
    const outputs = await this.session.run(Object.fromEntries(this.inputs.map((name, i) => [name, inputs[i]])));
    const folded: Feeds = {};
    for (const name of this.outputs) folded[name] = outputs[name] as ort.Tensor;
    this.last = { inputs, folded };
    return folded;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
