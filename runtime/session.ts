import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { PeftcError } from "../compiler/errors";

/** Execution provider that runs a graph. */
export type ExecutionDevice = "cpu" | "webgpu" | "cuda";

/** Device request: one provider, or `auto` for the first of cuda, webgpu and cpu that loads. */
export type DeviceRequest = ExecutionDevice | "auto";

export const DEVICE_REQUESTS: readonly DeviceRequest[] = ["cpu", "webgpu", "cuda", "auto"];

/** Order in which `auto` tries providers. */
const AUTO_ORDER: readonly ExecutionDevice[] = ["cuda", "webgpu", "cpu"];

/** A provider that `auto` skipped, and the reason. */
export interface SkippedDevice {
  device: ExecutionDevice;
  reason: string;
}

/** An open session and the provider it runs on. */
export interface OpenedSession {
  session: ort.InferenceSession;
  device: ExecutionDevice;
  /** Providers tried before `device` that failed to load, empty unless the request was `auto`. */
  skipped: SkippedDevice[];
}

/** onnxruntime session options without `executionProviders`, which `device` sets. */
export type DeviceSessionOptions = Omit<ort.InferenceSession.SessionOptions, "executionProviders">;

export interface OpenSessionOptions {
  /** Defaults to "cpu". */
  device?: DeviceRequest;
  /** Session options, or a function that gives them for the provider being tried (such as output locations on the device). */
  sessionOptions?: DeviceSessionOptions | ((device: ExecutionDevice) => DeviceSessionOptions);
}

const CUDA_INSTALL_HINT =
  "onnxruntime-node ships without its CUDA provider because peftc's install skips the download. " +
  "On a Linux machine with CUDA 12, install it with `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install`, or choose another device.";

const WEBGPU_HINT = "WebGPU needs a GPU adapter that Dawn can open (a Vulkan driver on Linux, with libvulkan.so.1 installed); choose another device on a machine without one.";

/** Returns the folder of onnxruntime-node's native binding, where provider libraries must sit. */
function bindingFolder(): string | null {
  try {
    const packageRoot = path.dirname(require.resolve("onnxruntime-node/package.json"));
    const folder = path.join(packageRoot, "bin", "napi-v6", process.platform, process.arch);
    return fs.existsSync(folder) ? folder : null;
  } catch {
    return null;
  }
}

/** Device files through which a Linux process reaches a GPU: DRM render nodes, NVIDIA's own, and WSL's /dev/dxg. */
function linuxGpuDeviceFiles(): string[] {
  const list = (folder: string, prefix: string) => {
    try {
      return fs.readdirSync(folder).filter((name) => name.startsWith(prefix));
    } catch {
      return [];
    }
  };
  return [...list("/dev/dri", "renderD"), ...list("/dev", "nvidia"), ...list("/dev", "dxg")];
}

/**
 * Returns why `device` cannot load without trying it, or null when it may.
 * A CUDA session whose provider library is missing would otherwise log a
 * native error line before it fails. For `auto`, WebGPU is also skipped on
 * a Linux machine without GPU device files: the only adapter Dawn could
 * open there is a software Vulkan driver (Mesa's lavapipe), which runs the
 * graphs far slower than the CPU provider. An explicit `webgpu` request
 * still uses it, which is how the WebGPU path is tested without a GPU.
 * NOTE: no CUDA session has run in this project's tests, only the error for
 * a missing provider library.
 */
function knownUnavailable(device: ExecutionDevice, request: DeviceRequest): string | null {
  if (device === "webgpu" && request === "auto" && process.platform === "linux" && linuxGpuDeviceFiles().length === 0) {
    return "no GPU device files (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg) exist, so any WebGPU adapter would be a software one, slower than the CPU provider. Pass --device webgpu to use it anyway.";
  }
  if (device !== "cuda") return null;
  if (process.platform !== "linux" && process.platform !== "win32") return `onnxruntime-node has no CUDA provider for ${process.platform}.`;
  const folder = bindingFolder();
  const library = process.platform === "win32" ? "onnxruntime_providers_cuda.dll" : "libonnxruntime_providers_cuda.so";
  if (folder && !fs.existsSync(path.join(folder, library))) return `${library} is not installed in ${folder}. ${CUDA_INSTALL_HINT}`;
  return null;
}

/** Formats why a provider failed: the first line of onnxruntime's message and what to do. */
function failureReason(device: ExecutionDevice, error: unknown): string {
  const firstLine = String((error as Error)?.message ?? error).split("\n")[0].trim();
  // onnxruntime prefixes provider failures with a source location and the failed check; the part from "Failed" on names the cause.
  const failedAt = firstLine.lastIndexOf("Failed");
  const cause = failedAt > 0 ? firstLine.slice(failedAt) : firstLine;
  if (device === "cuda") return `onnxruntime could not load the CUDA provider (${cause}). ${CUDA_INSTALL_HINT}`;
  if (device === "webgpu") return `onnxruntime could not open a WebGPU adapter (${cause}). ${WEBGPU_HINT}`;
  return `onnxruntime could not create a CPU session (${cause}).`;
}

async function createOn(modelPath: string, device: ExecutionDevice, sessionOptions: OpenSessionOptions["sessionOptions"]): Promise<ort.InferenceSession> {
  const options = typeof sessionOptions === "function" ? sessionOptions(device) : sessionOptions;
  return ort.InferenceSession.create(modelPath, { logSeverityLevel: 3, ...options, executionProviders: [device] });
}

/**
 * Opens `modelPath` on the requested device. An explicit device that fails
 * to load raises E_DEVICE with the reason and the install step. `auto`
 * tries cuda, then webgpu, then cpu, and lists the providers it skipped.
 * A model that fails on cpu raises E_ARTIFACT, because no provider helps.
 */
export async function openSession(modelPath: string, options: OpenSessionOptions = {}): Promise<OpenedSession> {
  const request = options.device ?? "cpu";
  if (!DEVICE_REQUESTS.includes(request)) {
    throw new PeftcError("E_DEVICE", `device "${String(request)}" is invalid: use one of ${DEVICE_REQUESTS.join(", ")}.`, { device: String(request) });
  }
  if (!fs.existsSync(modelPath)) throw new PeftcError("E_FILE_NOT_FOUND", `${modelPath} not found. Check the path.`, { file: modelPath });

  const candidates = request === "auto" ? AUTO_ORDER : [request];
  const skipped: SkippedDevice[] = [];
  for (const device of candidates) {
    const unavailable = knownUnavailable(device, request);
    if (unavailable !== null) {
      skipped.push({ device, reason: unavailable });
      continue;
    }
    try {
      return { session: await createOn(modelPath, device, options.sessionOptions), device, skipped };
    } catch (error) {
      if (device === "cpu") {
        throw new PeftcError("E_ARTIFACT", `cannot load ${modelPath}: ${failureReason("cpu", error)}`, { file: modelPath });
      }
      skipped.push({ device, reason: failureReason(device, error) });
    }
  }
  // Only an explicit cuda or webgpu request gets here, because auto ends with cpu.
  const { device, reason } = skipped[skipped.length - 1];
  throw new PeftcError("E_DEVICE", `device ${device} is unavailable: ${reason}`, { device, file: modelPath });
}

/** Formats the provider an opened session took, and the ones `auto` skipped with the reasons, as one line. */
export function describeDevice(opened: Pick<OpenedSession, "device" | "skipped">): string {
  if (opened.skipped.length === 0) return `device: ${opened.device}`;
  const skipped = opened.skipped.map((entry) => ` Skipped ${entry.device}: ${entry.reason}`).join("");
  return `device: ${opened.device}.${skipped}`;
}
