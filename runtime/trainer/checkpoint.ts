import * as ort from "onnxruntime-node";
import { readSafetensors, writeSafetensors } from "../../compiler/emit/safetensors";
import { DataType } from "../../compiler/onnx/dtype";
import { Tensor } from "../../compiler/onnx/tensor";
import { RuntimeInputError } from "../errors";
import type { Schedule } from "./schedule";

/** Position of a run after `step` updates: everything a resumed run needs besides the tensors. */
export interface TrainingPosition {
  /** Updates done. */
  step: number;
  /** Rows of the shuffled row stream consumed so far. */
  position: number;
  seed: number;
  schedule: Schedule;
  batchSize: number;
  gradAccum: number;
  maxLength: number;
  pack: boolean;
  /** Rows in the training set, to catch a resume on other data. */
  rows: number;
  /** Runs of the dropout-carrying graph so far, which a resume replays to restore onnxruntime's dropout mask sequence. */
  dropoutRuns: number;
}

const FORMAT = "peftc.checkpoint";

/** Converts a float32 or float16 onnxruntime tensor into a compiler tensor over a copy of its bytes. */
export function toCompilerTensor(name: string, tensor: ort.Tensor): Tensor {
  if (tensor.type !== "float32" && tensor.type !== "float16") {
    throw new RuntimeInputError("E_CHECKPOINT", `tensor "${name}" has type ${tensor.type}, but checkpoints hold float32 and float16 tensors only.`, { tensor: name });
  }
  const data = tensor.data as Float32Array | Uint16Array;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return new Tensor(name, tensor.type === "float32" ? DataType.FLOAT : DataType.FLOAT16, [...tensor.dims], { kind: "raw", bytes });
}

/** Converts a float32 or float16 compiler tensor into an onnxruntime tensor; float16 goes as its bit patterns, as onnxruntime-node takes it. */
export function toOrtTensor(tensor: Tensor, file: string): ort.Tensor {
  const bytes = tensor.bytes().slice();
  if (tensor.dtype === DataType.FLOAT) return new ort.Tensor("float32", new Float32Array(bytes.buffer), [...tensor.dims]);
  if (tensor.dtype === DataType.FLOAT16) return new ort.Tensor("float16", new Uint16Array(bytes.buffer), [...tensor.dims]);
  throw new RuntimeInputError("E_CHECKPOINT", `${file}: tensor "${tensor.name}" is not float32 or float16, so it cannot be a trainable tensor.`, { file, tensor: tensor.name });
}

/** Returns whether every value of a float32 or float16 tensor is finite. */
export function isFiniteTensor(tensor: ort.Tensor): boolean {
  if (tensor.type === "float16") return (tensor.data as Uint16Array).every((bits) => (bits & 0x7c00) !== 0x7c00);
  return (tensor.data as Float32Array).every(Number.isFinite);
}

/**
 * Writes the trainable tensors alone, in the layout of params.safetensors,
 * so `peftc export-adapter --params FILE` and `peftc eval --params FILE`
 * read it. The write is atomic.
 */
export function writeParams(file: string, params: Record<string, ort.Tensor>): void {
  writeSafetensors(file, new Map(Object.entries(params).map(([name, tensor]) => [name, toCompilerTensor(name, tensor)])), { format: "pt" });
}

/**
 * Writes parameters, optimizer state and the run position into one
 * safetensors file, atomically: a crash or an error leaves either the
 * previous file or the new one, never a partial file. Throws E_TRAINING,
 * writing nothing, when a tensor contains NaN or infinity.
 */
export function writeCheckpoint(file: string, params: Record<string, ort.Tensor>, state: Record<string, ort.Tensor>, position: TrainingPosition): void {
  const tensors = new Map<string, Tensor>();
  for (const [name, tensor] of [...Object.entries(params), ...Object.entries(state)]) {
    if (!isFiniteTensor(tensor)) {
      throw new RuntimeInputError("E_TRAINING", `after step ${position.step}, tensor "${name}" contains NaN or infinity, so no checkpoint was written. Lower the learning rate or clip gradients.`, { tensor: name, step: position.step });
    }
    tensors.set(name, toCompilerTensor(name, tensor));
  }
  const metadata: Record<string, string> = {
    format: FORMAT,
    step: String(position.step),
    position: String(position.position),
    seed: String(position.seed),
    schedule: JSON.stringify(position.schedule),
    batch_size: String(position.batchSize),
    grad_accum: String(position.gradAccum),
    max_length: String(position.maxLength),
    pack: String(position.pack),
    rows: String(position.rows),
    dropout_runs: String(position.dropoutRuns),
  };
  writeSafetensors(file, tensors, metadata);
}

/** A checkpoint read back: tensors as onnxruntime feeds, and the position. */
export interface Checkpoint {
  params: Record<string, ort.Tensor>;
  state: Record<string, ort.Tensor>;
  position: TrainingPosition;
}

/** Reads a checkpoint written by writeCheckpoint, checking that it has every tensor the artifacts train. */
export function readCheckpoint(file: string, paramNames: readonly string[], stateNames: readonly string[]): Checkpoint {
  const { tensors, metadata } = readSafetensors(file);
  const invalid = (problem: string): never => {
    throw new RuntimeInputError("E_CHECKPOINT", `${file} ${problem}`, { file });
  };
  if (metadata.format !== FORMAT) invalid(`is not a peftc training checkpoint: its metadata "format" is ${JSON.stringify(metadata.format)}, not "${FORMAT}". Pass a checkpoint-<step>.safetensors file that peftc train wrote.`);

  const pick = (names: readonly string[]): Record<string, ort.Tensor> => {
    const picked: Record<string, ort.Tensor> = {};
    for (const name of names) {
      const tensor = tensors.get(name);
      if (!tensor) invalid(`has no tensor "${name}", which the artifact folder trains. Resume with the artifact folder the checkpoint came from.`);
      picked[name] = toOrtTensor(tensor!, file);
    }
    return picked;
  };

  const integer = (key: string): number => {
    const value = Number(metadata[key]);
    if (!Number.isSafeInteger(value) || value < 0) invalid(`has invalid metadata "${key}": ${JSON.stringify(metadata[key])}.`);
    return value;
  };
  let schedule: Schedule;
  try {
    schedule = JSON.parse(metadata.schedule) as Schedule;
  } catch {
    return invalid(`has invalid metadata "schedule": ${JSON.stringify(metadata.schedule)}.`);
  }
  return {
    params: pick(paramNames),
    state: pick(stateNames),
    position: {
      step: integer("step"),
      position: integer("position"),
      seed: integer("seed"),
      schedule,
      batchSize: integer("batch_size"),
      gradAccum: integer("grad_accum"),
      maxLength: integer("max_length"),
      pack: metadata.pack === "true",
      rows: integer("rows"),
      dropoutRuns: integer("dropout_runs"),
    },
  };
}
