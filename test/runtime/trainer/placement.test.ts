import * as ort from "onnxruntime-node";
import { graphOutputLocations, releaseOutputs, releaseReplaced, residentLocation } from "../../../runtime/trainer/placement";

/** A tensor that claims to live in a WebGPU buffer, with counted disposals, as onnxruntime-node returns them. */
function deviceTensor(values: number[], log: string[], name: string): ort.Tensor {
  return ort.Tensor.fromGpuBuffer({} as never, {
    dataType: "float32",
    dims: [values.length],
    dispose: () => log.push(`dispose ${name}`),
  });
}

describe("tensor placement between training steps", () => {
  test("only WebGPU keeps outputs in device buffers", () => {
    expect(residentLocation("webgpu")).toBe("gpu-buffer");
    expect(residentLocation("cuda")).toBe("cpu");
    expect(residentLocation("cpu")).toBe("cpu");
  });

  test("train.onnx keeps updates on device", () => {
    const outputs = ["loss", "label_count", "grad_norm", "w.new", "w.m.new", "w.v.new"];
    expect(graphOutputLocations("train", outputs, "webgpu")).toEqual({ loss: "cpu", label_count: "cpu", grad_norm: "cpu", "w.new": "gpu-buffer", "w.m.new": "gpu-buffer", "w.v.new": "gpu-buffer" });
    expect(graphOutputLocations("eval", ["loss", "label_count", "logits"], "webgpu")).toEqual({ loss: "cpu", label_count: "cpu", logits: "gpu-buffer" });
    expect(graphOutputLocations("grad", ["loss", "w.grad"], "webgpu")).toBeUndefined();
    expect(graphOutputLocations("train", outputs, "cpu")).toBeUndefined();
    expect(graphOutputLocations("train", outputs, "cuda")).toBeUndefined();
  });

  test("releaseReplaced frees replaced device buffers only", () => {
    const log: string[] = [];
    const unchanged = deviceTensor([1], log, "unchanged");
    const replaced = deviceTensor([2], log, "replaced");
    releaseReplaced({ unchanged, replaced, host: new ort.Tensor("float32", Float32Array.of(0), [1]) }, { unchanged, replaced: deviceTensor([3], log, "new") });
    expect(log).toEqual(["dispose replaced"]);
    releaseOutputs({ logits: deviceTensor([4], log, "logits"), loss: new ort.Tensor("float32", Float32Array.of(1), []) });
    expect(log).toEqual(["dispose replaced", "dispose logits"]);
  });
});
