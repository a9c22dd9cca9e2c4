import { SingleBar } from "cli-progress";

/** Training progress on a terminal; every method does nothing when the stream is not a TTY. */
export class TrainingProgress {
  private readonly bar: SingleBar | null;

  constructor(stream: NodeJS.WriteStream, enabled: boolean) {
    this.bar = enabled && stream.isTTY
      ? new SingleBar({
          stream,
          format: "train [{bar}] {value}/{total} steps | loss {loss} | {speed} tok/s | ETA {eta_formatted}",
          hideCursor: true,
          etaBuffer: 20,
        })
      : null;
  }

  start(totalSteps: number, startStep: number): void {
    this.bar?.start(totalSteps, startStep, { loss: "-", speed: "-" });
  }

  update(step: number, loss: number, tokensPerSecond: number): void {
    this.bar?.update(step, { loss: loss.toFixed(4), speed: tokensPerSecond.toFixed(0) });
  }

  stop(): void {
    this.bar?.stop();
  }
}
