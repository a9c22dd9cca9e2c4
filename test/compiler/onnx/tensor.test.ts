import { DataType } from "../../../compiler/onnx/dtype";
import { encodeTensorProto, tensorFromProto, tensorToProto } from "../../../compiler/onnx/model-file";
import { TensorProto } from "../../../compiler/onnx/proto";
import { TensorProtoType } from "../../../compiler/onnx/schema";
import { Tensor, encodeRaw } from "../../../compiler/onnx/tensor";
import { isPeftcError } from "../../../compiler/errors";

/** Serializes and decodes a TensorProto, as a file would carry it. */
function throughProtobuf(proto: TensorProto): TensorProto {
  return TensorProtoType.decode(encodeTensorProto(proto)) as unknown as TensorProto;
}

const cases: { dtype: DataType; values: number[] | bigint[]; field: keyof TensorProto; fieldValues: unknown[] }[] = [
  { dtype: DataType.FLOAT, values: [1.5, -2.25, 3e-8], field: "floatData", fieldValues: [1.5, -2.25, 3e-8] },
  { dtype: DataType.FLOAT16, values: [1, -0.5, 65504], field: "int32Data", fieldValues: [0x3c00, 0xb800, 0x7bff] },
  { dtype: DataType.BFLOAT16, values: [1, -2, 0.5], field: "int32Data", fieldValues: [0x3f80, 0xc000, 0x3f00] },
  { dtype: DataType.INT64, values: [0n, -1n, 9223372036854775807n, -9223372036854775808n], field: "int64Data", fieldValues: ["0", "-1", "9223372036854775807", "-9223372036854775808"] },
  { dtype: DataType.INT32, values: [0, -7, 2147483647], field: "int32Data", fieldValues: [0, -7, 2147483647] },
  { dtype: DataType.INT8, values: [-128, 0, 127], field: "int32Data", fieldValues: [-128, 0, 127] },
  { dtype: DataType.UINT8, values: [0, 200, 255], field: "int32Data", fieldValues: [0, 200, 255] },
  { dtype: DataType.BOOL, values: [1, 0, 1], field: "int32Data", fieldValues: [1, 0, 1] },
];

function toArray(dtype: DataType, values: number[] | bigint[]) {
  switch (dtype) {
    case DataType.INT64:
      return BigInt64Array.from(values as bigint[]);
    case DataType.INT32:
      return Int32Array.from(values as number[]);
    case DataType.INT8:
      return Int8Array.from(values as number[]);
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array.from(values as number[]);
    default:
      return Float32Array.from(values as number[]);
  }
}

function fieldProto(dtype: DataType, dims: number[], field: keyof TensorProto, fieldValues: unknown[]): TensorProto {
  const values = field === "int64Data" ? fieldValues.map((text) => Long.fromString(text as string)) : fieldValues;
  return { name: "t", dataType: dtype, dims, [field]: values };
}

import Long from "long";

describe("tensor encoding", () => {
  it.each(cases)("decodes $dtype from raw_data", ({ dtype, values }) => {
    const raw = encodeRaw(dtype, toArray(dtype, values));
    const tensor = tensorFromProto(throughProtobuf({ name: "t", dataType: dtype, dims: [values.length], rawData: raw }));
    expect(Array.from(tensor.data() as ArrayLike<unknown>)).toEqual(Array.from(toArray(dtype, values) as ArrayLike<unknown>));
  });

  it.each(cases)("decodes $dtype from typed fields", ({ dtype, values, field, fieldValues }) => {
    const tensor = tensorFromProto(throughProtobuf(fieldProto(dtype, [values.length], field, fieldValues)));
    expect(tensor.source.kind).toBe("fields");
    expect(Array.from(tensor.data() as ArrayLike<unknown>)).toEqual(Array.from(toArray(dtype, values) as ArrayLike<unknown>));
  });

  it.each(cases)("writes $dtype back in the form it was read", ({ dtype, values, field, fieldValues }) => {
    const fromFields = tensorFromProto(throughProtobuf(fieldProto(dtype, [values.length], field, fieldValues)));
    const written = throughProtobuf(tensorToProto(fromFields));
    expect(written.rawData?.length ?? 0).toBe(0);
    expect((written[field] as unknown[]).length).toBe(values.length);
    const fromArray = Tensor.fromArray("t", dtype, [values.length], toArray(dtype, values));
    const rawWritten = throughProtobuf(tensorToProto(fromArray));
    expect(Array.from(rawWritten.rawData ?? [])).toEqual(Array.from(fromArray.bytes()));
  });

  it("reads raw_data at an odd byte offset", () => {
    const bytes = new Uint8Array(1 + 8);
    new DataView(bytes.buffer).setFloat32(1, 2.5, true);
    new DataView(bytes.buffer).setFloat32(5, -1, true);
    const tensor = new Tensor("odd", DataType.FLOAT, [2], { kind: "raw", bytes: bytes.subarray(1) });
    expect(Array.from(tensor.data() as Float32Array)).toEqual([2.5, -1]);
  });

  it("encodes uint32, uint64, int16 and double through raw_data", () => {
    const samples: [DataType, ArrayLike<unknown> & { buffer: ArrayBufferLike }][] = [
      [DataType.UINT32, Uint32Array.from([0, 4294967295])],
      [DataType.UINT64, BigUint64Array.from([0n, 18446744073709551615n])],
      [DataType.INT16, Int16Array.from([-32768, 32767])],
      [DataType.UINT16, Uint16Array.from([0, 65535])],
      [DataType.DOUBLE, Float64Array.from([Math.PI, -1e300])],
    ];
    for (const [dtype, array] of samples) {
      const tensor = Tensor.fromArray("t", dtype, [2], array as never);
      const back = tensorFromProto(throughProtobuf(tensorToProto(tensor)));
      expect(Array.from(back.data() as ArrayLike<unknown>)).toEqual(Array.from(array));
    }
  });

  it("rejects raw_data of the wrong length at load", () => {
    let caught: unknown;
    try {
      tensorFromProto({ name: "short", dataType: DataType.FLOAT, dims: [3], rawData: new Uint8Array(8) });
    } catch (error) {
      caught = error;
    }
    expect(isPeftcError(caught)).toBe(true);
    expect((caught as { code?: string }).code).toBe("E_TENSOR_DATA");
    expect(String(caught)).toContain("short");
  });

  it("rejects too few typed values at load", () => {
    expect(() => tensorFromProto({ name: "few", dataType: DataType.INT64, dims: [3], int64Data: [Long.fromNumber(1)] })).toThrow(/1 values stored/);
  });

  it("rejects a shape too large for any file", () => {
    expect(() => tensorFromProto({ name: "huge", dataType: DataType.FLOAT, dims: [2 ** 40, 2 ** 40], rawData: new Uint8Array(48) })).toThrow(/more bytes than any file/);
  });

  it("rejects raw bytes of an in-memory tensor that do not match", () => {
    const tensor = new Tensor("odd", DataType.FLOAT, [3], { kind: "raw", bytes: new Uint8Array(8) });
    let caught: unknown;
    try {
      tensor.data();
    } catch (error) {
      caught = error;
    }
    expect(isPeftcError(caught)).toBe(true);
    expect((caught as { code?: string }).code).toBe("E_TENSOR_DATA");
  });

  it("rejects an unknown data type", () => {
    expect(() => tensorFromProto({ name: "odd", dataType: 99, dims: [1] })).toThrow(/data_type 99/);
  });

  it("counts the elements of a scalar as one", () => {
    const scalar = Tensor.fromArray("s", DataType.INT64, [], BigInt64Array.from([5n]));
    expect(scalar.size).toBe(1);
    expect(scalar.numbers()).toEqual([5]);
  });
});
