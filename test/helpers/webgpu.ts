import { spawnSync } from "node:child_process";
import * as path from "node:path";

const PROBE_MODEL = path.resolve(__dirname, "../../fixtures/llama-tiny.onnx");

/**
 * Opens a WebGPU session in a child process, so a machine without an
 * adapter costs one short process rather than a failed suite. Synchronous,
 * because Jest picks `describe` or `describe.skip` while it loads a file.
 */
function probe(): { available: boolean; reason: string } {
  const script = `require("onnxruntime-node").InferenceSession.create(${JSON.stringify(PROBE_MODEL)}, { executionProviders: ["webgpu"], logSeverityLevel: 3 })
    .then(() => process.exit(0), (error) => { console.log(String(error.message).split("\\n")[0]); process.exit(1); });`;
  const result = spawnSync(process.execPath, ["-e", script], { cwd: path.resolve(__dirname, "../.."), encoding: "utf8", timeout: 60_000 });
  if (result.status === 0) return { available: true, reason: "" };
  const message = result.stdout.trim() || result.stderr.trim().split("\n").pop() || `exit status ${result.status}`;
  // onnxruntime puts a source location and the failed check before the cause, which starts at "Failed".
  const cause = message.lastIndexOf("Failed");
  return { available: false, reason: cause > 0 ? message.slice(cause) : message };
}

let cached: { available: boolean; reason: string } | undefined;

/**
 * `describe` where onnxruntime's WebGPU provider opens an adapter, and
 * `describe.skip` with the reason printed elsewhere. Without a GPU, Mesa's
 * software Vulkan driver (lavapipe) gives Dawn an adapter; `.ci/run`
 * installs it, so CI runs these suites.
 */
export function describeWebGpu(name: string, body: () => void): void {
  cached ??= probe();
  if (cached.available) {
    describe(name, body);
  } else {
    console.warn(`skipping "${name}": onnxruntime could not open a WebGPU adapter (${cached.reason}). Install a Vulkan driver, such as Debian's mesa-vulkan-drivers from bookworm-backports, to run it.`);
    describe.skip(`${name} (skipped: no WebGPU adapter)`, body);
  }
}
