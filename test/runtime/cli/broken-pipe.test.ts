import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import * as path from "node:path";
import { exitOnBrokenPipe } from "../../../runtime/cli/main";

const ROOT = path.resolve(__dirname, "../../..");

describe("exitOnBrokenPipe", () => {
  it("exits with status 0 on EPIPE", () => {
    const stream = new EventEmitter();
    const statuses: number[] = [];
    exitOnBrokenPipe(stream, (status) => statuses.push(status));
    stream.emit("error", Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    expect(statuses).toEqual([0]);
  });

  it("rethrows other stream errors", () => {
    const stream = new EventEmitter();
    const statuses: number[] = [];
    exitOnBrokenPipe(stream, (status) => statuses.push(status));
    expect(() => stream.emit("error", Object.assign(new Error("write EIO"), { code: "EIO" }))).toThrow("write EIO");
    expect(statuses).toEqual([]);
  });
});

describe("bin/peftc.js", () => {
  // Runs the built CLI (npm run build), as a shell pipeline into `head` does.
  it("exits quietly when stdout closes early", async () => {
    const child = spawn(process.execPath, [path.join(ROOT, "bin", "peftc.js"), "inspect", path.join(ROOT, "fixtures", "llama-tiny.onnx"), "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    // Closing the read end at once makes the CLI's first write fail with EPIPE.
    child.stdout.destroy();
    const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(stderr).toBe("");
    expect(status).toBe(0);
  });
});
