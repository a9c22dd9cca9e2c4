import * as fs from "node:fs";
import * as path from "node:path";
import { isPeftcError } from "../../../compiler/errors";
import { loadModel, loadModelFromBuffer } from "../../../compiler/ir/io";
import { modelToProto } from "../../../compiler/ir/to-proto";
import { encodeModelProto } from "../../../compiler/onnx/model-file";
import { ModelProto } from "../../../compiler/onnx/proto";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { tinyLinearModel } from "../../helpers/tiny-model";

afterAll(removeTempDirs);

function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (isPeftcError(error)) return error.code;
    throw error;
  }
  return "no error";
}

function messageOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    return (error as Error).message;
  }
  return "no error";
}

function tinyProto(): ModelProto {
  return modelToProto(tinyLinearModel());
}

/** Returns deterministic pseudo-random bytes for the random-input cases. */
function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

describe("bad model files", () => {
  const valid = encodeModelProto(tinyProto());

  it("names a missing file", () => {
    expect(codeOf(() => loadModel("/nonexistent/model.onnx"))).toBe("E_FILE_NOT_FOUND");
    expect(messageOf(() => loadModel("/nonexistent/model.onnx"))).toContain("/nonexistent/model.onnx");
  });

  it("rejects a folder passed as the model", () => {
    expect(codeOf(() => loadModel(makeTempDir()))).toBe("E_FILE_NOT_FOUND");
  });

  it("rejects truncated protobuf at every cut", () => {
    for (let cut = 0; cut < valid.length; cut += 7) {
      const code = codeOf(() => loadModelFromBuffer(valid.subarray(0, cut), `cut at ${cut}`));
      expect([cut, code]).toEqual([cut, expect.stringMatching(/^E_(ONNX_PARSE|ONNX_INVALID|IR_UNDEFINED_VALUE|TENSOR_DATA)$/)]);
    }
  });

  it("rejects random bytes without crashing or hanging", () => {
    const started = Date.now();
    for (let seed = 1; seed <= 200; seed++) {
      const code = codeOf(() => loadModelFromBuffer(pseudoRandomBytes(64 + seed * 13, seed), `random ${seed}`));
      expect(code).toMatch(/^E_/);
    }
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("rejects an empty file with a one-paragraph message naming it", () => {
    const file = path.join(makeTempDir(), "empty.onnx");
    fs.writeFileSync(file, new Uint8Array());
    const message = messageOf(() => loadModel(file));
    expect(message).toContain(file);
    expect(message).not.toContain("\n");
  });

  it("rejects a node reading an undefined value", () => {
    const proto = tinyProto();
    proto.graph!.node![1].input![0] = "nowhere";
    const message = messageOf(() => loadModelFromBuffer(encodeModelProto(proto), "undefined.onnx"));
    expect(codeOf(() => loadModelFromBuffer(encodeModelProto(proto)))).toBe("E_IR_UNDEFINED_VALUE");
    expect(message).toContain("nowhere");
    expect(message).toContain("/linear/Add");
  });

  it("rejects a cycle and names the nodes on it", () => {
    const proto = tinyProto();
    // /linear/MatMul now reads the output of /act/Relu, which depends on it.
    proto.graph!.node![0].input![0] = "y";
    const message = messageOf(() => loadModelFromBuffer(encodeModelProto(proto), "cycle.onnx"));
    expect(codeOf(() => loadModelFromBuffer(encodeModelProto(proto)))).toBe("E_IR_CYCLE");
    expect(message).toContain("/linear/MatMul");
    expect(message).toContain("/act/Relu");
  });

  it("rejects an unknown operator domain", () => {
    const proto = tinyProto();
    proto.graph!.node![2].domain = "com.example.custom";
    const message = messageOf(() => loadModelFromBuffer(encodeModelProto(proto), "domain.onnx"));
    expect(codeOf(() => loadModelFromBuffer(encodeModelProto(proto)))).toBe("E_UNKNOWN_DOMAIN");
    expect(message).toContain("com.example.custom");
    expect(message).toContain("/act/Relu");
  });

  it("accepts onnxruntime's domains without an import", () => {
    const proto = tinyProto();
    proto.graph!.node![2].domain = "com.microsoft";
    proto.graph!.node![2].opType = "FastGelu";
    expect(() => loadModelFromBuffer(encodeModelProto(proto))).not.toThrow();
  });

  it("rejects a value defined twice", () => {
    const proto = tinyProto();
    proto.graph!.node![1].output![0] = "xw";
    expect(codeOf(() => loadModelFromBuffer(encodeModelProto(proto)))).toBe("E_IR_INVARIANT");
  });

  it("rejects a model without a default-domain opset", () => {
    const proto = tinyProto();
    proto.opsetImport = [];
    expect(codeOf(() => loadModelFromBuffer(encodeModelProto(proto)))).toBe("E_ONNX_INVALID");
  });
});
