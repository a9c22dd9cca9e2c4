import * as fs from "node:fs";

/** Peak resident memory of this process so far (VmHWM), in bytes. */
export function peakRssBytes(): number {
  const status = fs.readFileSync("/proc/self/status", "utf8");
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : process.memoryUsage().rss;
}

/** Runs `action` once and returns its wall time in milliseconds with its result. */
export function timed<T>(action: () => T): { ms: number; result: T } {
  const started = process.hrtime.bigint();
  const result = action();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, result };
}
