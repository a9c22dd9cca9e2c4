import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import type { Spec } from "../../compiler/dsl/spec";
import { compileArtifacts } from "../../compiler/emit/compile";
import type { Manifest } from "../../compiler/emit/manifest";
import { readSafetensors } from "../../compiler/emit/safetensors";
import { DataType } from "../../compiler/onnx/dtype";
import { float32ToFloat16 } from "../../compiler/onnx/half";
import { openSession } from "./ort";
import { makeTempDir } from "./temp";

/** An artifact folder compiled for a test, with helpers to run its graphs. */
export interface CompiledArtifacts {
  dir: string;
  manifest: Manifest;
  /** Initial trainable tensors from params.safetensors, as feeds. */
  params: Record<string, ort.Tensor>;
  session(kind: "eval" | "grad" | "train" | "apply" | "infer"): Promise<ort.InferenceSession>;
  /** Zero optimizer state for every state input, as train.onnx starts. */
  zeroState(): Record<string, ort.Tensor>;
}

export function compileForTest(modelFile: string, spec: Spec): CompiledArtifacts {
  const dir = path.join(makeTempDir("peftc-artifacts-"), "out");
  const { manifest } = compileArtifacts({ modelFile, outDir: dir, spec });
  const params: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of readSafetensors(path.join(dir, "params.safetensors")).tensors) {
    const values = Float32Array.from(tensor.data() as ArrayLike<number>);
    // onnxruntime-node takes float16 tensors as their bit patterns.
    params[name] = tensor.dtype === DataType.FLOAT16 ? new ort.Tensor("float16", Uint16Array.from(values, float32ToFloat16), [...tensor.dims]) : new ort.Tensor("float32", values, [...tensor.dims]);
  }
  const sessions = new Map<string, Promise<ort.InferenceSession>>();
  return {
    dir,
    manifest,
    params,
    session(kind) {
      if (!sessions.has(kind)) sessions.set(kind, openSession(path.join(dir, `${kind}.onnx`)));
      return sessions.get(kind)!;
    },
    zeroState() {
      const shapes = new Map(manifest.parameters.map((parameter) => [parameter.name, parameter.shape]));
      return Object.fromEntries(
        manifest.optimizer.state.map((name) => {
          const shape = shapes.get(name.replace(/\.(m|v|momentum)$/, ""))!;
          return [name, new ort.Tensor("float32", new Float32Array(shape.reduce((a, b) => a * b, 1)), shape)];
        }),
      );
    },
  };
}

/** An int64 [rows, columns] tensor. */
export function int64Matrix(rows: number[][]): ort.Tensor {
  return new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
}

export function floatScalar(value: number): ort.Tensor {
  return new ort.Tensor("float32", Float32Array.of(value), []);
}

export function int64Scalar(value: number): ort.Tensor {
  return new ort.Tensor("int64", BigInt64Array.of(BigInt(value)), []);
}

export function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, "utf8")) as T;
}
