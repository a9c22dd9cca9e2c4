import fs = require("node:fs");
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { readCheckpoint, writeCheckpoint, writeParams } from "../../../runtime/trainer/checkpoint";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);
afterEach(() => jest.restoreAllMocks());

const position = {
  step: 3,
  position: 12,
  seed: 4,
  schedule: { name: "linear" as const, lr: 0.01, warmup: 1, totalSteps: 9 },
  batchSize: 4,
  gradAccum: 1,
  maxLength: 16,
  pack: true,
  rows: 20,
  dropoutRuns: 3,
};

function tensors(value: number): { params: Record<string, ort.Tensor>; state: Record<string, ort.Tensor> } {
  return {
    params: { w: new ort.Tensor("float32", Float32Array.of(value, value + 1), [2]), h: new ort.Tensor("float16", Uint16Array.of(0x3c00), [1]) },
    state: { "w.m": new ort.Tensor("float32", Float32Array.of(0.5, 0.25), [2]), "h.m": new ort.Tensor("float32", Float32Array.of(0), [1]) },
  };
}

describe("checkpoint", () => {
  test("round-trips tensors and position", () => {
    const file = path.join(makeTempDir(), "checkpoint-3.safetensors");
    const { params, state } = tensors(1);
    writeCheckpoint(file, params, state, position);
    const read = readCheckpoint(file, ["w", "h"], ["w.m", "h.m"]);
    expect(read.position).toEqual(position);
    expect(Array.from(read.params.w.data as Float32Array)).toEqual([1, 2]);
    expect(read.params.h.type).toBe("float16");
    expect(Array.from(read.params.h.data as Uint16Array)).toEqual([0x3c00]);
    expect(Array.from(read.state["w.m"].data as Float32Array)).toEqual([0.5, 0.25]);
  });

  test("failed write leaves the old file and no partial file", () => {
    const dir = makeTempDir();
    const file = path.join(dir, "checkpoint.safetensors");
    const first = tensors(1);
    writeCheckpoint(file, first.params, first.state, position);
    const before = fs.readFileSync(file);

    const realWrite = fs.writeSync;
    let calls = 0;
    jest.spyOn(fs, "writeSync").mockImplementation(((...args: Parameters<typeof fs.writeSync>) => {
      calls++;
      if (calls === 2) throw new Error("simulated crash in the middle of the write");
      return (realWrite as (...rest: unknown[]) => number)(...args);
    }) as typeof fs.writeSync);
    const second = tensors(7);
    expect(() => writeCheckpoint(file, second.params, second.state, { ...position, step: 6 })).toThrow("simulated crash");
    expect(calls).toBe(2);

    expect(fs.readdirSync(dir)).toEqual(["checkpoint.safetensors"]);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  test("rejects non-finite tensors", () => {
    const file = path.join(makeTempDir(), "checkpoint.safetensors");
    const { params, state } = tensors(Number.NaN);
    expect(() => writeCheckpoint(file, params, state, position)).toThrow('tensor "w" contains NaN or infinity');
    expect(fs.existsSync(file)).toBe(false);
  });

  test("rejects a missing tensor", () => {
    const file = path.join(makeTempDir(), "checkpoint.safetensors");
    const { params, state } = tensors(1);
    writeCheckpoint(file, params, state, position);
    expect(() => readCheckpoint(file, ["w", "missing"], [])).toThrow('has no tensor "missing"');
  });

  test("rejects a params file", () => {
    const file = path.join(makeTempDir(), "params.safetensors");
    writeParams(file, tensors(1).params);
    expect(() => readCheckpoint(file, ["w"], [])).toThrow("is not a peftc training checkpoint");
  });
});
