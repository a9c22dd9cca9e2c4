/** Learning-rate schedule names that `peftc train --schedule` takes. */
export const SCHEDULES = ["constant", "linear", "cosine"] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

/** A learning-rate schedule over a whole run; checkpoints store it so a resumed run keeps the same rates. */
export interface Schedule {
  name: ScheduleName;
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Updates over which the rate rises linearly from lr/warmup to lr. */
  warmup: number;
  /** Updates in the whole run. */
  totalSteps: number;
}

/**
 * Returns the learning rate of update `step` (1-based). Warmup gives
 * lr·step/warmup, so the first update already moves the weights (Hugging
 * Face's get_*_schedule_with_warmup gives 0 there). After warmup, with
 * progress p = (step − warmup − 1) / (totalSteps − warmup) in [0, 1):
 * constant keeps lr, linear gives lr·(1 − p) and cosine gives
 * lr·(1 + cos πp)/2, as those Hugging Face schedules do.
 */
export function learningRate(schedule: Schedule, step: number): number {
  const { name, lr, warmup, totalSteps } = schedule;
  if (step <= warmup) return (lr * step) / warmup;
  if (name === "constant") return lr;
  const progress = Math.min(1, (step - warmup - 1) / Math.max(1, totalSteps - warmup));
  if (name === "linear") return lr * (1 - progress);
  return lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
