import * as fs from "node:fs";
import * as path from "node:path";
import { PeftcError } from "../errors";
import type { Tensor } from "../onnx/tensor";
import { encodeSafetensors, temporaryPath, writeChunks } from "./safetensors";

/** The two files of a Hugging Face PEFT adapter folder, as PeftModel.from_pretrained reads them. */
export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";

/** The fields of PEFT's PeftConfig base class, which every adapter_config.json has. */
export interface PeftConfigJson {
  peft_type: string;
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
}

/** The files of one adapter folder: the state dict and the config object. */
export interface AdapterFolderContents {
  /** Tensors by state-dict key, written to adapter_model.safetensors. */
  weights: ReadonlyMap<string, Tensor>;
  /** Written to adapter_config.json as 2-space indented JSON, in the object's key order. */
  config: object;
}

/**
 * Writes a PEFT adapter folder for any adapter type. Creates `dir`, or
 * accepts an existing folder only when it is empty or already contains an
 * adapter_config.json, so a wrong --out never mixes files into unrelated
 * data. Both files go to temporary names first and are renamed only when
 * both are complete, so a failed write leaves an earlier adapter as it was.
 * Returns the paths of adapter_config.json and adapter_model.safetensors,
 * in that order.
 */
export function writeAdapterFolder(dir: string, contents: AdapterFolderContents): [string, string] {
  prepareFolder(dir);
  // PEFT's save_pretrained writes the same metadata.
  const weightChunks = encodeSafetensors(contents.weights, { format: "pt" });
  const configText = `${JSON.stringify(contents.config, null, 2)}\n`;
  writeFolderFiles(dir, [
    [ADAPTER_WEIGHTS_FILE, weightChunks],
    [ADAPTER_CONFIG_FILE, [Buffer.from(configText, "utf8")]],
  ]);
  return [path.join(dir, ADAPTER_CONFIG_FILE), path.join(dir, ADAPTER_WEIGHTS_FILE)];
}

function prepareFolder(dir: string): void {
  let entries: string[];
  try {
    const stat = fs.statSync(dir);
    if (!stat.isDirectory()) throw new PeftcError("E_OUTPUT_PATH", `cannot write an adapter to ${dir}: it is a file, not a folder. Pass a folder path.`, { file: dir });
    entries = fs.readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    fs.mkdirSync(dir, { recursive: true });
    return;
  }
  if (entries.length > 0 && !entries.includes(ADAPTER_CONFIG_FILE)) {
    throw new PeftcError(
      "E_OUTPUT_PATH",
      `cannot write an adapter to ${dir}: the folder is not empty and contains no ${ADAPTER_CONFIG_FILE}, so it is not an adapter folder. Pass a new or empty folder.`,
      { file: dir },
    );
  }
}

/** Writes each file under a temporary name, then renames them all. On failure it removes the temporary files. */
function writeFolderFiles(dir: string, files: [string, Uint8Array[]][]): void {
  const temps: string[] = [];
  try {
    for (const [name, chunks] of files) {
      const temp = temporaryPath(path.join(dir, name));
      temps.push(temp);
      writeChunks(temp, chunks);
    }
    files.forEach(([name], i) => fs.renameSync(temps[i], path.join(dir, name)));
  } catch (error) {
    for (const temp of temps) fs.rmSync(temp, { force: true });
    if (error instanceof PeftcError) throw error;
    throw new PeftcError("E_OUTPUT_PATH", `cannot write the adapter to ${dir}: ${(error as Error).message}`, { file: dir });
  }
}
