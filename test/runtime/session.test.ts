import * as fs from "node:fs";
import * as path from "node:path";
import { describeDevice, openSession } from "../../runtime/session";
import { makeTempDir, removeTempDirs } from "../helpers/temp";

afterAll(removeTempDirs);

const MODEL = path.resolve(__dirname, "../../fixtures/llama-tiny.onnx");
const CUDA_LIBRARY = path.join(path.dirname(require.resolve("onnxruntime-node/package.json")), "bin", "napi-v6", process.platform, process.arch, "libonnxruntime_providers_cuda.so");
const hasCudaLibrary = fs.existsSync(CUDA_LIBRARY);

/** Returns whether this is a Linux machine without GPU device files, where any WebGPU adapter would be software. */
function linuxWithoutGpu(): boolean {
  if (process.platform !== "linux") return false;
  const list = (folder: string) => (fs.existsSync(folder) ? fs.readdirSync(folder) : []);
  return !list("/dev/dri").some((name) => name.startsWith("renderD")) && !list("/dev").some((name) => name.startsWith("nvidia") || name === "dxg");
}

describe("openSession", () => {
  test("cpu opens and runs", async () => {
    const opened = await openSession(MODEL, { device: "cpu" });
    expect(opened.device).toBe("cpu");
    expect(opened.skipped).toEqual([]);
    expect(opened.session.inputNames).toContain("input_ids");
    expect(describeDevice(opened)).toBe("device: cpu");
    await opened.session.release();
  });

  test("default device is cpu", async () => {
    const opened = await openSession(MODEL);
    expect(opened.device).toBe("cpu");
    await opened.session.release();
  });

  test("auto reports skipped providers", async () => {
    const opened = await openSession(MODEL, { device: "auto" });
    const order = ["cuda", "webgpu", "cpu"];
    // Every provider before the one taken was tried and skipped, in auto's order.
    expect(opened.skipped.map((entry) => entry.device)).toEqual(order.slice(0, order.indexOf(opened.device)));
    for (const entry of opened.skipped) expect(entry.reason.length).toBeGreaterThan(0);
    if (opened.device !== "cpu") expect(describeDevice(opened)).toContain(opened.device);
    else expect(describeDevice(opened)).toMatch(/^device: cpu\. Skipped cuda: .+ Skipped webgpu: .+$/);
    await opened.session.release();
  });

  (linuxWithoutGpu() ? test : test.skip)("auto skips WebGPU where only a software adapter could exist", async () => {
    const opened = await openSession(MODEL, { device: "auto" });
    expect(opened.device).not.toBe("webgpu");
    const webgpu = opened.skipped.find((entry) => entry.device === "webgpu");
    expect(webgpu?.reason).toContain("no GPU device files (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg) exist");
    expect(webgpu?.reason).toContain("--device webgpu");
    await opened.session.release();
  });

  (hasCudaLibrary ? test.skip : test)("missing CUDA provider names install step", async () => {
    const error = await openSession(MODEL, { device: "cuda" }).then(
      () => null,
      (caught: unknown) => caught,
    );
    expect(error).toMatchObject({ code: "E_DEVICE" });
    const message = (error as Error).message;
    expect(message).toContain("libonnxruntime_providers_cuda.so is not installed");
    expect(message).toContain("ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install");
    expect(message.split("\n")).toHaveLength(1);
  });

  test("webgpu opens or explains failure", async () => {
    const outcome = await openSession(MODEL, { device: "webgpu" }).then(
      (opened) => opened,
      (caught: unknown) => caught as Error,
    );
    if (outcome instanceof Error) {
      expect(outcome).toMatchObject({ code: "E_DEVICE" });
      expect(outcome.message).toMatch(/^device webgpu is unavailable: onnxruntime could not open a WebGPU adapter \(Failed .+\)\. WebGPU needs a GPU adapter/);
      expect(outcome.message.split("\n")).toHaveLength(1);
    } else {
      expect(outcome.device).toBe("webgpu");
      await outcome.session.release();
    }
  });

  test("unknown device is rejected", async () => {
    await expect(openSession(MODEL, { device: "tpu" as never })).rejects.toMatchObject({ code: "E_DEVICE", message: expect.stringContaining('"tpu"') });
  });

  test("missing model file is rejected", async () => {
    await expect(openSession(path.join(makeTempDir(), "missing.onnx"))).rejects.toMatchObject({ code: "E_FILE_NOT_FOUND" });
  });

  test("invalid model file raises E_ARTIFACT", async () => {
    const file = path.join(makeTempDir(), "broken.onnx");
    fs.writeFileSync(file, "not a model");
    await expect(openSession(file, { device: "auto" })).rejects.toMatchObject({ code: "E_ARTIFACT", message: expect.stringContaining(file) });
  });
});
