import * as fs from "node:fs";
import * as path from "node:path";
import { isPeftcError } from "../../../compiler/errors";
import { loadModel, saveModel } from "../../../compiler/ir/io";
import { DataType } from "../../../compiler/onnx/dtype";
import { encodeModelProto } from "../../../compiler/onnx/model-file";
import { ModelProto } from "../../../compiler/onnx/proto";
import { modelToProto } from "../../../compiler/ir/to-proto";
import { makeTempDir, removeTempDirs } from "../../helpers/temp";
import { tinyLinearModel } from "../../helpers/tiny-model";

afterAll(removeTempDirs);

/** Writes a model whose initializer "W" points at `location` with the given range. */
function writeWithExternal(dir: string, location: string, offset = 0, length?: number): string {
  const proto = modelToProto(tinyLinearModel()) as ModelProto;
  const weight = proto.graph!.initializer!.find((tensor) => tensor.name === "W")!;
  delete weight.rawData;
  weight.dataLocation = 1;
  weight.externalData = [
    { key: "location", value: location },
    { key: "offset", value: String(offset) },
    ...(length === undefined ? [] : [{ key: "length", value: String(length) }]),
  ];
  const file = path.join(dir, "model.onnx");
  fs.writeFileSync(file, encodeModelProto(proto));
  return file;
}

function errorOf(action: () => unknown): { code?: string; message: string } {
  try {
    action();
  } catch (error) {
    return { code: isPeftcError(error) ? error.code : undefined, message: String(error) };
  }
  throw new Error("expected an error");
}

describe("external data", () => {
  it("saves large initializers to a data file and reads them back", () => {
    const dir = makeTempDir();
    const file = path.join(dir, "model.onnx");
    saveModel(tinyLinearModel(), file, { externalDataThreshold: 16 });

    expect(fs.existsSync(`${file}.data`)).toBe(true);
    const model = loadModel(file);
    const weight = model.graph.initializers.get("W")!.initializer!;
    const bias = model.graph.initializers.get("b")!.initializer!;
    expect(weight.source.kind).toBe("external");
    expect(bias.source.kind).toBe("raw");
    expect(Array.from(weight.data() as Float32Array)).toEqual(Array.from(tinyLinearModel().graph.initializers.get("W")!.initializer!.data() as Float32Array));
  });

  it("aligns each external tensor to 64 bytes", () => {
    const dir = makeTempDir();
    const file = path.join(dir, "model.onnx");
    saveModel(tinyLinearModel(), file, { externalDataThreshold: 1 });
    const model = loadModel(file);
    for (const value of model.graph.initializers.values()) {
      const source = value.initializer!.source;
      expect(source.kind).toBe("external");
      if (source.kind === "external") expect(source.ref.offset % 64).toBe(0);
    }
  });

  it("hard-links kept weights next to a copy", () => {
    const source = makeTempDir();
    const original = path.join(source, "model.onnx");
    saveModel(tinyLinearModel(), original, { externalDataThreshold: 16 });
    const model = loadModel(original);

    const target = makeTempDir();
    const placed = saveModel(model, path.join(target, "copy.onnx"));
    expect(placed).toEqual([{ location: "model.onnx.data", placement: "hardlink" }]);
    expect(fs.statSync(path.join(target, "model.onnx.data")).ino).toBe(fs.statSync(`${original}.data`).ino);
    const copy = loadModel(path.join(target, "copy.onnx"));
    expect(copy.graph.initializers.get("W")!.initializer!.source.kind).toBe("external");
  });

  it("does not read weights when loading", () => {
    const dir = makeTempDir();
    // A 64 GiB sparse data file: reading it would take minutes and all memory.
    const huge = 64 * 2 ** 30;
    const dataFile = path.join(dir, "weights.bin");
    fs.closeSync(fs.openSync(dataFile, "w"));
    fs.truncateSync(dataFile, huge);
    const file = writeWithExternal(dir, "weights.bin", huge - 48, 48);
    const started = Date.now();
    const model = loadModel(file);
    expect(Date.now() - started).toBeLessThan(2000);
    const weight = model.graph.initializers.get("W")!.initializer!;
    const source = weight.source;
    expect(source.kind).toBe("external");
    if (source.kind === "external") expect(source.ref.offset).toBe(huge - 48);
    expect(Array.from(weight.data() as Float32Array)).toEqual(new Array(12).fill(0));
  });

  it("rejects an absolute location", () => {
    const dir = makeTempDir();
    const error = errorOf(() => loadModel(writeWithExternal(dir, "/etc/passwd")));
    expect(error.code).toBe("E_EXTERNAL_DATA_PATH");
    expect(error.message).toContain("absolute");
  });

  it("rejects a location that leaves the folder", () => {
    const root = makeTempDir();
    const dir = path.join(root, "model");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(root, "outside.bin"), new Uint8Array(48));
    const error = errorOf(() => loadModel(writeWithExternal(dir, "../outside.bin")));
    expect(error.code).toBe("E_EXTERNAL_DATA_PATH");
    expect(error.message).toContain("leaves the model's folder");
  });

  it("rejects a symlink that resolves outside the folder", () => {
    const dir = makeTempDir();
    const outside = makeTempDir();
    fs.writeFileSync(path.join(outside, "real.bin"), new Uint8Array(48));
    fs.symlinkSync(path.join(outside, "real.bin"), path.join(dir, "link.bin"));
    const error = errorOf(() => loadModel(writeWithExternal(dir, "link.bin")));
    expect(error.code).toBe("E_EXTERNAL_DATA_PATH");
    expect(error.message).toContain("symlink");
  });

  it("accepts a symlink that stays inside the folder", () => {
    const dir = makeTempDir();
    fs.mkdirSync(path.join(dir, "data"));
    fs.writeFileSync(path.join(dir, "data", "real.bin"), new Uint8Array(48));
    fs.symlinkSync(path.join(dir, "data", "real.bin"), path.join(dir, "link.bin"));
    const model = loadModel(writeWithExternal(dir, "link.bin"));
    expect(model.graph.initializers.get("W")!.initializer!.isExternal).toBe(true);
  });

  it("rejects an offset past the end of the file", () => {
    const dir = makeTempDir();
    fs.writeFileSync(path.join(dir, "w.bin"), new Uint8Array(48));
    const error = errorOf(() => loadModel(writeWithExternal(dir, "w.bin", 16)));
    expect(error.code).toBe("E_EXTERNAL_DATA_RANGE");
    expect(error.message).toContain("past the end");
  });

  it("rejects a length that does not match the shape", () => {
    const dir = makeTempDir();
    fs.writeFileSync(path.join(dir, "w.bin"), new Uint8Array(96));
    const error = errorOf(() => loadModel(writeWithExternal(dir, "w.bin", 0, 40)));
    expect(error.code).toBe("E_EXTERNAL_DATA_RANGE");
  });

  it("rejects a missing data file unless asked to allow it", () => {
    const dir = makeTempDir();
    const file = writeWithExternal(dir, "gone.bin");
    const error = errorOf(() => loadModel(file));
    expect(error.code).toBe("E_EXTERNAL_DATA_MISSING");
    expect(error.message).toContain("gone.bin");

    const model = loadModel(file, { allowMissingExternalData: true });
    const weight = model.graph.initializers.get("W")!.initializer!;
    expect(weight.dtype).toBe(DataType.FLOAT);
    expect(weight.dims).toEqual([4, 3]);
    expect(errorOf(() => weight.data()).code).toBe("E_EXTERNAL_DATA_MISSING");
  });

  it("leaves no files behind when a save fails", () => {
    const source = makeTempDir();
    saveModel(tinyLinearModel(), path.join(source, "model.onnx"), { externalDataThreshold: 16 });
    const model = loadModel(path.join(source, "model.onnx"));
    // The weights vanish after loading, so copying them during the save fails halfway.
    fs.rmSync(path.join(source, "model.onnx.data"));

    const target = makeTempDir();
    expect(() => saveModel(model, path.join(target, "copy.onnx"), { externalDataThreshold: 1 })).toThrow(/ENOENT/);
    expect(fs.readdirSync(target)).toEqual([]);
  });
});

describe("saving external weights inline", () => {
  it("copies them into the model file when asked", () => {
    const source = makeTempDir();
    saveModel(tinyLinearModel(), path.join(source, "model.onnx"), { externalDataThreshold: 16 });
    const target = makeTempDir();
    const placed = saveModel(loadModel(path.join(source, "model.onnx")), path.join(target, "inline.onnx"), { existingExternalData: "inline" });
    expect(placed).toEqual([]);
    expect(fs.readdirSync(target)).toEqual(["inline.onnx"]);
    const weight = loadModel(path.join(target, "inline.onnx")).graph.initializers.get("W")!.initializer!;
    expect(weight.source.kind).toBe("raw");
  });
});
