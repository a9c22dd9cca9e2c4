// Bad inputs to `peftc inspect` and loadModel. Each must end in the
// documented contract (exit status 2 with one paragraph naming the file, or
// a PeftcError from loadModel) and never crash, hang or pass unnoticed.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import Long from "long";
import { isPeftcError } from "../../../compiler/errors";
import { loadModel, loadModelFromBuffer } from "../../../compiler/ir/io";
import { modelToProto } from "../../../compiler/ir/to-proto";
import { encodeModelProto } from "../../../compiler/onnx/model-file";
import { ModelProto, TensorProto } from "../../../compiler/onnx/proto";
import { runCli } from "../../../runtime/cli/main";
import { openSession } from "../../helpers/ort";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { tinyLinearModel } from "../../helpers/tiny-model";

afterAll(removeTempDirs);

const BIN = path.resolve(__dirname, "../../../bin/peftc.js");
const UNSAFE_INT64 = Long.fromString("1152921504606846976"); // 2^60
const W_BYTES = Buffer.from(new Float32Array(Array.from({ length: 12 }, (_, i) => (i - 6) / 4)).buffer);

async function inspect(file: string): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(["inspect", file], { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { status, stdout, stderr };
}

/** Runs the installed command in a child process, killed after `timeoutMs`. */
function inspectInChild(file: string, timeoutMs: number): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const result = spawnSync(process.execPath, [BIN, "inspect", file], { encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL" });
  return { status: result.status, signal: result.signal, stderr: result.stderr ?? "" };
}

function expectUsageError(result: { status: number | null; stderr: string }, file: string): void {
  expect(result.stderr).not.toContain("internal error");
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.stderr).toContain(file);
  expect(result.status).toBe(2);
}

function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    return isPeftcError(error) ? error.code : `not a PeftcError: ${String(error)}`;
  }
  return "no error";
}

function tinyProto(): ModelProto {
  return modelToProto(tinyLinearModel());
}

function weightOf(proto: ModelProto): TensorProto {
  return proto.graph!.initializer!.find((tensor) => tensor.name === "W")!;
}

/** Writes `proto` as model.onnx in a new folder and returns its path. */
function writeModel(proto: ModelProto, name = "model.onnx"): string {
  const file = path.join(makeTempDir("peftc-breaker-"), name);
  fs.writeFileSync(file, encodeModelProto(proto));
  return file;
}

/** Builds the tiny model with its initializer W moved to external data at `location`. */
function externalWeight(location: string): ModelProto {
  const proto = tinyProto();
  const weight = weightOf(proto);
  delete weight.rawData;
  weight.dataLocation = 1;
  weight.externalData = [{ key: "location", value: location }];
  return proto;
}

describe("inspect int64 fields past 2^53", () => {
  it("exits 2 on an initializer dim", async () => {
    const proto = tinyProto();
    weightOf(proto).dims = [UNSAFE_INT64, 3];
    const file = writeModel(proto);
    expectUsageError(await inspect(file), file);
  });

  it("exits 2 on an input shape dim", async () => {
    const proto = tinyProto();
    proto.graph!.input![0].type!.tensorType!.shape!.dim![1] = { dimValue: UNSAFE_INT64 };
    const file = writeModel(proto);
    expectUsageError(await inspect(file), file);
  });

  it("exits 2 on ir_version", async () => {
    const proto = tinyProto();
    proto.irVersion = UNSAFE_INT64;
    const file = writeModel(proto);
    expectUsageError(await inspect(file), file);
  });

  it("exits 2 on an opset version", async () => {
    const proto = tinyProto();
    proto.opsetImport = [{ domain: "", version: UNSAFE_INT64 }];
    const file = writeModel(proto);
    expectUsageError(await inspect(file), file);
  });
});

describe("inspect file system errors", () => {
  it("exits 2 on a path through a file", async () => {
    const file = path.join(writeModel(tinyProto()), "model.onnx");
    expectUsageError(await inspect(file), file);
  });

  it("exits 2 on a name too long", async () => {
    const file = path.join(makeTempDir("peftc-breaker-"), `${"m".repeat(300)}.onnx`);
    expectUsageError(await inspect(file), file);
  });

  it("exits 2 on a symlink loop", async () => {
    const file = path.join(makeTempDir("peftc-breaker-"), "loop.onnx");
    fs.symlinkSync("loop.onnx", file);
    expectUsageError(await inspect(file), file);
  });

  it("exits 2 on a file past 2 GiB", async () => {
    // A sparse file: nothing is written to disk, and no ONNX model can be this large.
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx.data");
    fs.writeFileSync(file, "");
    fs.truncateSync(file, 3 * 2 ** 30);
    expectUsageError(await inspect(file), file);
  });

  it("exits 2 on a FIFO without hanging", () => {
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    execFileSync("mkfifo", [file]);
    const result = inspectInChild(file, 5000);
    expect(result.signal).toBeNull();
    expectUsageError(result, file);
  });

  it("exits 2 on a link to /dev/zero", () => {
    // Reading the link to the end never stops (6 GB of memory within 20 s in one run), so the child is killed after 3 s.
    const file = path.join(makeTempDir("peftc-breaker-"), "model.onnx");
    fs.symlinkSync("/dev/zero", file);
    const result = inspectInChild(file, 3000);
    expect(result.signal).toBeNull();
    expectUsageError(result, file);
  });
});

describe("inspect tensor sizes", () => {
  it("rejects raw_data shorter than the shape", () => {
    const proto = tinyProto();
    weightOf(proto).rawData = new Uint8Array(4);
    const file = writeModel(proto);
    expect(codeOf(() => loadModel(file))).toBe("E_TENSOR_DATA");
  });

  it("exits 2 on dims [2^40, 2^40] with 48 bytes", async () => {
    // The dims need 2^82 bytes, far more than the 48 bytes of raw_data (without a size check, inspect reports 2^80 parameters).
    const proto = tinyProto();
    weightOf(proto).dims = [Long.fromNumber(2 ** 40), Long.fromNumber(2 ** 40)];
    const file = writeModel(proto);
    expectUsageError(await inspect(file), file);
  });
});

describe("inspect external data files", () => {
  it("rejects a folder as the data file", () => {
    // onnxruntime rejects it too: "Random-access reads require a regular file".
    const file = writeModel(externalWeight("sub"));
    fs.mkdirSync(path.join(path.dirname(file), "sub"));
    expect(codeOf(() => loadModel(file))).toMatch(/^E_EXTERNAL_DATA_/);
  });

  it("rejects a FIFO as the data file", () => {
    // With a zero-element tensor the size check passes, and a later save blocks forever opening the FIFO.
    const proto = externalWeight("w.data");
    weightOf(proto).dims = [0, 3];
    const file = writeModel(proto);
    execFileSync("mkfifo", [path.join(path.dirname(file), "w.data")]);
    expect(codeOf(() => loadModel(file))).toMatch(/^E_EXTERNAL_DATA_/);
  });

  it("accepts a file named ..w.data", async () => {
    const file = writeModel(externalWeight("..w.data"));
    fs.writeFileSync(path.join(path.dirname(file), "..w.data"), W_BYTES);
    await expect(openSession(file)).resolves.toBeDefined();
    expect(codeOf(() => loadModel(file))).toBe("no error");
  });

  it("accepts the Hugging Face cache layout", async () => {
    // huggingface_hub stores files in blobs/ and links them from snapshots/<revision>/.
    // onnxruntime 1.31 checks the data file against the model file's real folder, so it loads this.
    const cache = makeTempDir("peftc-breaker-");
    fs.mkdirSync(path.join(cache, "blobs"));
    fs.mkdirSync(path.join(cache, "snapshots", "rev1"), { recursive: true });
    fs.writeFileSync(path.join(cache, "blobs", "model-blob"), encodeModelProto(externalWeight("model.onnx.data")));
    fs.writeFileSync(path.join(cache, "blobs", "data-blob"), W_BYTES);
    const file = path.join(cache, "snapshots", "rev1", "model.onnx");
    fs.symlinkSync("../../blobs/model-blob", file);
    fs.symlinkSync("../../blobs/data-blob", path.join(cache, "snapshots", "rev1", "model.onnx.data"));

    await expect(openSession(file)).resolves.toBeDefined();
    expect(codeOf(() => loadModel(file))).toBe("no error");
  });

  it("reads backslash locations as onnxruntime does", async () => {
    // onnxruntime on Linux takes "sub\w.data" as one file name, not as sub/w.data.
    const literal = writeModel(externalWeight("sub\\w.data"));
    fs.writeFileSync(path.join(path.dirname(literal), "sub\\w.data"), W_BYTES);
    await expect(openSession(literal)).resolves.toBeDefined();
    expect(codeOf(() => loadModel(literal))).toBe("no error");
  });
});

describe("inspect wide nodes", () => {
  it("loads 100,000 reads of one value quickly", () => {
    // A scan of the value's use list per input makes this quadratic (7 s for 100k and 32 s for 200k on a 2-core machine).
    const proto = tinyProto();
    proto.graph!.node!.push({ opType: "Concat", name: "wide", input: Array(100000).fill("x"), output: ["wide_out"], attribute: [{ name: "axis", type: 2, i: 0 }] });
    proto.graph!.output!.push({ name: "wide_out" });
    const bytes = encodeModelProto(proto);
    const started = Date.now();
    loadModelFromBuffer(bytes, "wide");
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
