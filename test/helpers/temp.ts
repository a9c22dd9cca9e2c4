import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Creates a fresh temporary folder; `removeTempDirs` deletes all of them. */
const created: string[] = [];

export function makeTempDir(prefix = "peftc-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}
