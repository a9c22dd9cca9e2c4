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
