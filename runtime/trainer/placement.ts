import * as ort from "onnxruntime-node";
import type { ExecutionDevice } from "../session";

/**
 * Returns where a session leaves outputs that only feed a later run: the
 * updated parameters and optimizer state of train.onnx and apply.onnx, and
 * the outputs the runtime does not read. onnxruntime-node binds device
 * memory only for WebGPU ("gpu-buffer", a WebGPU buffer it fills and later
 * reads as an input without a copy). Its CUDA provider returns every output
 * in host memory, so on CUDA, and on the CPU, tensors stay ordinary arrays.
 * NOTE: the WebGPU path is tested on Mesa's software Vulkan driver only; no
 * GPU hardware has run it, so driver-specific failures are unknown.
 */
export function residentLocation(device: ExecutionDevice): ort.Tensor.DataLocation {
  return device === "webgpu" ? "gpu-buffer" : "cpu";
}

/**
 * Preferred output locations for a session: `read` outputs (losses and
 * counts the runtime inspects every step) in host memory, every other
 * output at `resident`.
 */
export function outputLocations(outputs: readonly string[], read: ReadonlySet<string>, resident: ort.Tensor.DataLocation): Record<string, ort.Tensor.DataLocation> {
  return Object.fromEntries(outputs.map((name) => [name, read.has(name) ? "cpu" : resident]));
}

/** Outputs the runtime reads on the host after every run of each graph. */
const HOST_OUTPUTS: Record<"eval" | "grad" | "train" | "apply", ReadonlySet<string> | "all"> = {
  train: new Set(["loss", "label_count", "grad_norm"]),
  apply: new Set(["grad_norm"]),
  eval: new Set(["loss", "label_count"]),
  // Gradients are summed over micro-batches in host memory.
  grad: "all",
};

/**
 * Returns the preferred output locations of one artifact graph on `device`, or
 * undefined where every output goes to the host anyway (the CPU and CUDA
 * providers, and grad.onnx).
 */
export function graphOutputLocations(kind: keyof typeof HOST_OUTPUTS, outputs: readonly string[], device: ExecutionDevice): Record<string, ort.Tensor.DataLocation> | undefined {
  const resident = residentLocation(device);
  const host = HOST_OUTPUTS[kind];
  return resident === "cpu" || host === "all" ? undefined : outputLocations(outputs, host, resident);
}

/**
 * Frees the device buffers of `previous` that `next` does not hold, once a
 * step has replaced them. Host tensors are left to the garbage collector,
 * and a tensor still in `next` (fed back unchanged) is kept.
 */
export function releaseReplaced(previous: Record<string, ort.Tensor>, next: Record<string, ort.Tensor>): void {
  const unchanged = new Set(Object.values(next));
  for (const tensor of Object.values(previous)) {
    if (tensor.location !== "cpu" && !unchanged.has(tensor)) tensor.dispose();
  }
}

/** Frees every device buffer among `outputs`, such as the logits of an eval run that only its loss was read from. */
export function releaseOutputs(outputs: Record<string, ort.OnnxValue>): void {
  for (const value of Object.values(outputs)) if (value instanceof ort.Tensor && value.location !== "cpu") value.dispose();
}
