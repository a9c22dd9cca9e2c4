import * as fs from "node:fs";
import * as path from "node:path";
import {
  MAX_HEADER_BYTES,
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  writeFileAtomic,
  writeSafetensors,
} from "../../../compiler/emit/safetensors";
import { isPeftcError } from "../../../compiler/errors";
import { DataType, TensorArray } from "../../../compiler/onnx/dtype";
import { Tensor } from "../../../compiler/onnx/tensor";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

function errorOf(action: () => unknown): { code?: string; message: string } {
  try {
    action();
  } catch (error) {
    return { code: isPeftcError(error) ? error.code : undefined, message: (error as Error).message };
  }
  throw new Error("expected an error");
}

function concat(chunks: Uint8Array[]): Buffer {
  return Buffer.concat(chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
}

/** Builds file bytes from a header object (or raw header text) and a data section, as the format lays them out. */
function fileBytes(header: unknown, data: Uint8Array = new Uint8Array(0), options: { pad?: boolean; lengthOverride?: bigint } = {}): Buffer {
  let json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  if (options.pad) json = Buffer.concat([json, Buffer.alloc((8 - (json.byteLength % 8)) % 8, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(options.lengthOverride ?? BigInt(json.byteLength));
  return Buffer.concat([length, json, Buffer.from(data)]);
}

const CASES: [string, DataType, TensorArray][] = [
  ["F32", DataType.FLOAT, Float32Array.from([1.5, -2.25, 0, 3e-8, 65504, -1e30])],
  ["F16", DataType.FLOAT16, Float32Array.from([1.5, -2.25, 0, 0.0001220703125, 65504, -0.5])],
  ["BF16", DataType.BFLOAT16, Float32Array.from([1.5, -2.25, 0, 3.0517578125e-5, 2 ** 100, -0.5])],
  ["F64", DataType.DOUBLE, Float64Array.from([Math.PI, -Math.E, 0, 1e-300, 1e300, -0.1])],
  ["I64", DataType.INT64, BigInt64Array.from([0n, -1n, 2n ** 62n, -(2n ** 63n), 42n, 7n])],
  ["I32", DataType.INT32, Int32Array.from([0, -1, 2 ** 31 - 1, -(2 ** 31), 42, 7])],
  ["I16", DataType.INT16, Int16Array.from([0, -1, 32767, -32768, 42, 7])],
  ["I8", DataType.INT8, Int8Array.from([0, -1, 127, -128, 42, 7])],
  ["U8", DataType.UINT8, Uint8Array.from([0, 1, 255, 128, 42, 7])],
  ["BOOL", DataType.BOOL, Uint8Array.from([0, 1, 1, 0, 1, 0])],
  ["U16", DataType.UINT16, Uint16Array.from([0, 1, 65535, 128, 42, 7])],
  ["U32", DataType.UINT32, Uint32Array.from([0, 1, 2 ** 32 - 1, 128, 42, 7])],
  ["U64", DataType.UINT64, BigUint64Array.from([0n, 1n, 2n ** 64n - 1n, 128n, 42n, 7n])],
];

describe("safetensors round trip", () => {
  it.each(CASES)("%s keeps values, shape and dtype", (dtypeName, dtype, values) => {
    const dir = makeTempDir();
    const file = path.join(dir, "one.safetensors");
    writeSafetensors(file, new Map([["t", Tensor.fromArray("t", dtype, [2, 3], values)]]));

    const header = JSON.parse(fs.readFileSync(file).subarray(8, 8 + Number(fs.readFileSync(file).readBigUInt64LE(0))).toString("utf8"));
    expect(header.t.dtype).toBe(dtypeName);

    const read = readSafetensors(file).tensors.get("t")!;
    expect(read.dtype).toBe(dtype);
    expect(read.dims).toEqual([2, 3]);
    expect(Array.from(read.data() as ArrayLike<unknown>)).toEqual(Array.from(values as ArrayLike<unknown>));
  });

  it("keeps several tensors, empty tensors, scalars and metadata", () => {
    const dir = makeTempDir();
    const file = path.join(dir, "many.safetensors");
    const tensors = new Map([
      ["b.weight", Tensor.fromArray("b.weight", DataType.FLOAT, [2, 2], Float32Array.from([1, 2, 3, 4]))],
      ["a.empty", Tensor.fromArray("a.empty", DataType.FLOAT16, [0, 4], new Float32Array(0))],
      ["c.scalar", Tensor.fromArray("c.scalar", DataType.INT64, [], BigInt64Array.from([9n]))],
    ]);
    writeSafetensors(file, tensors, { format: "pt", note: "ünïcode" });

    const { tensors: read, metadata } = readSafetensors(file);
    expect([...read.keys()]).toEqual(["a.empty", "b.weight", "c.scalar"]);
    expect(read.get("a.empty")!.dims).toEqual([0, 4]);
    expect(read.get("c.scalar")!.dims).toEqual([]);
    expect(Array.from(read.get("c.scalar")!.data() as BigInt64Array)).toEqual([9n]);
    expect(read.get("b.weight")!.numbers()).toEqual([1, 2, 3, 4]);
    expect(metadata).toEqual({ format: "pt", note: "ünïcode" });
  });
});

describe("safetensors layout", () => {
  const tensorsInOrder = (names: string[]): Map<string, Tensor> =>
    new Map(names.map((name, i) => [name, Tensor.fromArray(name, DataType.FLOAT, [i + 1], Float32Array.from({ length: i + 1 }, (_, j) => j + i))]));

  it("encodes the same tensors to the same bytes in any insertion order", () => {
    const first = concat(encodeSafetensors(tensorsInOrder(["x", "a", "m"]), { z: "1", a: "2" }));
    const map = tensorsInOrder(["x", "a", "m"]);
    const reordered = new Map([...map].reverse());
    const second = concat(encodeSafetensors(reordered, { a: "2", z: "1" }));
    expect(second.equals(first)).toBe(true);
  });

  it("writes byte-identical files twice", () => {
    const dir = makeTempDir();
    writeSafetensors(path.join(dir, "1.safetensors"), tensorsInOrder(["w", "v"]), { format: "pt" });
    writeSafetensors(path.join(dir, "2.safetensors"), tensorsInOrder(["w", "v"]), { format: "pt" });
    expect(fs.readFileSync(path.join(dir, "1.safetensors")).equals(fs.readFileSync(path.join(dir, "2.safetensors")))).toBe(true);
  });

  it("pads the header with spaces to a multiple of 8", () => {
    const bytes = concat(encodeSafetensors(tensorsInOrder(["abc"])));
    const length = Number(bytes.readBigUInt64LE(0));
    expect(length % 8).toBe(0);
    const header = bytes.subarray(8, 8 + length).toString("utf8");
    expect(header).toMatch(/^\{.*\} *$/);
    expect(header.trimEnd().length).toBeGreaterThan(length - 8);
  });

  it("lays data out in sorted key order with metadata first in the header", () => {
    const bytes = concat(encodeSafetensors(tensorsInOrder(["b", "a"]), { format: "pt" }));
    const length = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + length).toString("utf8"));
    expect(Object.keys(header)).toEqual(["__metadata__", "a", "b"]);
    expect(header.a.data_offsets).toEqual([0, 8]);
    expect(header.b.data_offsets).toEqual([8, 12]);
    expect(bytes.byteLength).toBe(8 + length + 12);
  });

  it("omits __metadata__ when there is none", () => {
    const bytes = concat(encodeSafetensors(tensorsInOrder(["a"])));
    const header = bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString("utf8");
    expect(header).not.toContain("__metadata__");
  });

  it("reads a file built by hand from the format's byte layout", () => {
    // Unpadded header, tensors stored in the opposite of key order, metadata last.
    const data = Buffer.alloc(4 + 6);
    data.writeInt32LE(-7, 0);
    data.writeUInt16LE(0x3c00, 4); // float16 1.0
    data.writeUInt16LE(0xc000, 6); // float16 -2.0
    data.writeUInt16LE(0x7c00, 8); // float16 +inf
    const header = '{"z":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F16","shape":[3],"data_offsets":[4,10]},"__metadata__":{"format":"pt"}}';
    const { tensors, metadata } = parseSafetensors(fileBytes(header, data), "hand.safetensors");
    expect(tensors.get("z")!.numbers()).toEqual([-7]);
    expect(tensors.get("a")!.numbers()).toEqual([1, -2, Infinity]);
    expect(tensors.get("a")!.dtype).toBe(DataType.FLOAT16);
    expect(metadata).toEqual({ format: "pt" });
  });

  it("reads tensors at unaligned offsets", () => {
    const data = Buffer.alloc(1 + 4);
    data.writeUInt8(3, 0);
    data.writeFloatLE(2.5, 1);
    const header = { a: { dtype: "U8", shape: [1], data_offsets: [0, 1] }, b: { dtype: "F32", shape: [1], data_offsets: [1, 5] } };
    const { tensors } = parseSafetensors(fileBytes(header, data), "odd.safetensors");
    expect(tensors.get("b")!.numbers()).toEqual([2.5]);
  });
});

describe("safetensors malformed files", () => {
  const F32_PAIR = Buffer.from(Float32Array.from([1, 2]).buffer);
  const good = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, ...extra });

  const cases: [string, Buffer, string, string | undefined][] = [
    ["a file shorter than 8 bytes", Buffer.from([1, 2, 3]), "fewer than the 8-byte header length", undefined],
    ["a header length past the end", fileBytes(good(), F32_PAIR, { lengthOverride: 1000n }), "only", undefined],
    ["a header length over the limit", fileBytes(good(), F32_PAIR, { lengthOverride: BigInt(MAX_HEADER_BYTES) + 1n }), "limit", undefined],
    ["a header that is not UTF-8", Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0xff])]), "UTF-8", undefined],
    ["a header that is not an object", fileBytes("[1, 2]"), 'does not start with "{"', undefined],
    ["a header that is not valid JSON", fileBytes('{"w": '), "not valid JSON", undefined],
    ["an unknown dtype", fileBytes({ w: { dtype: "F31", shape: [2], data_offsets: [0, 8] } }, F32_PAIR), 'unknown dtype "F31"', "w"],
    ["an unsupported float8 dtype", fileBytes({ w: { dtype: "F8_E4M3", shape: [8], data_offsets: [0, 8] } }, F32_PAIR), "not supported", "w"],
    ["a missing dtype", fileBytes({ w: { shape: [2], data_offsets: [0, 8] } }, F32_PAIR), "dtype is undefined", "w"],
    ["a negative dimension", fileBytes({ w: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, F32_PAIR), "shape is [-2]", "w"],
    ["offsets that are not a pair", fileBytes({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, F32_PAIR), "data_offsets is [0]", "w"],
    ["offsets that end before they begin", fileBytes({ w: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, F32_PAIR), "ends before it begins", "w"],
    ["a byte length that does not match the shape", fileBytes({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, F32_PAIR), "needs 12", "w"],
    ["a byte length that does not match the dtype", fileBytes({ w: { dtype: "F64", shape: [2], data_offsets: [0, 8] } }, F32_PAIR), "needs 16", "w"],
    [
      "a gap between tensors",
      fileBytes({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "U8", shape: [2], data_offsets: [6, 8] } }, F32_PAIR),
      "leave a gap",
      "b",
    ],
    [
      "overlapping tensors",
      fileBytes({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, F32_PAIR),
      "overlap",
      "b",
    ],
    ["a tensor past the data section", fileBytes({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, F32_PAIR), "past the data section", "w"],
    ["trailing bytes after the tensors", fileBytes(good(), Buffer.concat([F32_PAIR, Buffer.alloc(4)])), "cover only 8", undefined],
    ["metadata that is not a string", fileBytes(good({ __metadata__: { step: 3 } }), F32_PAIR), '"__metadata__" entry "step"', undefined],
    ["metadata that is a list", fileBytes(good({ __metadata__: ["a"] }), F32_PAIR), "is not an object of strings", undefined],
    ["a tensor entry that is not an object", fileBytes({ w: 5 }), "not an object with dtype", "w"],
  ];

  it.each(cases)("rejects %s", (_, bytes, problem, tensor) => {
    const dir = makeTempDir();
    const file = path.join(dir, "bad.safetensors");
    fs.writeFileSync(file, bytes);
    const error = errorOf(() => readSafetensors(file));
    expect(error.code).toBe("E_SAFETENSORS");
    expect(error.message).toContain(file);
    expect(error.message).toContain(problem);
    if (tensor !== undefined) expect(error.message).toContain(`tensor "${tensor}"`);
  });

  it("reports a missing file as not found", () => {
    const error = errorOf(() => readSafetensors(path.join(makeTempDir(), "missing.safetensors")));
    expect(error.code).toBe("E_FILE_NOT_FOUND");
  });
});

describe("safetensors writer", () => {
  it("rejects a dtype the format cannot hold", () => {
    const tensor = new Tensor("q", DataType.FLOAT8E4M3FN, [2], { kind: "raw", bytes: new Uint8Array(2) });
    const error = errorOf(() => encodeSafetensors(new Map([["q", tensor]])));
    expect(error.code).toBe("E_SAFETENSORS");
    expect(error.message).toContain('"q"');
  });

  it("rejects a tensor named __metadata__", () => {
    const tensor = Tensor.fromArray("__metadata__", DataType.FLOAT, [1], Float32Array.from([1]));
    expect(errorOf(() => encodeSafetensors(new Map([["__metadata__", tensor]]))).code).toBe("E_SAFETENSORS");
  });

  it("keeps the old file when encoding fails", () => {
    const dir = makeTempDir();
    const file = path.join(dir, "params.safetensors");
    fs.writeFileSync(file, "old");
    const bad = new Tensor("q", DataType.FLOAT8E4M3FN, [2], { kind: "raw", bytes: new Uint8Array(2) });
    expect(errorOf(() => writeSafetensors(file, new Map([["q", bad]]))).code).toBe("E_SAFETENSORS");
    expect(fs.readFileSync(file, "utf8")).toBe("old");
    expect(fs.readdirSync(dir)).toEqual(["params.safetensors"]);
  });

  it("leaves no temporary file when the rename fails", () => {
    const dir = makeTempDir();
    const target = path.join(dir, "taken");
    fs.mkdirSync(path.join(target, "child"), { recursive: true });
    expect(() => writeFileAtomic(target, [new Uint8Array([1, 2, 3])])).toThrow();
    expect(fs.readdirSync(dir)).toEqual(["taken"]);
  });

  it("reports a missing folder as an output path error", () => {
    const file = path.join(makeTempDir(), "no", "such", "dir", "x.safetensors");
    const tensor = Tensor.fromArray("a", DataType.FLOAT, [1], Float32Array.from([1]));
    expect(errorOf(() => writeSafetensors(file, new Map([["a", tensor]]))).code).toBe("E_OUTPUT_PATH");
  });
});
