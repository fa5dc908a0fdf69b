import { z } from "zod";

export const LrSchedule = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("inverse-sqrt"),
    warmupSteps: z.int().min(0).default(4000),
    initLr: z.number().min(0).default(1e-7).describe("learning rate at step 0 of the warmup"),
  }),
  z.strictObject({
    type: z.literal("cosine"),
    warmupSteps: z.int().min(0).default(1000),
    totalSteps: z
      .int()
      .min(1)
      .optional()
      .describe("step at which the decay reaches minLr (default: train.maxSteps)"),
    minLr: z.number().min(0).default(0),
  }),
  z.strictObject({ type: z.literal("constant"), warmupSteps: z.int().min(0).default(0) }),
]);
export type LrSchedule = z.output<typeof LrSchedule>;

/**
 * Learning rate at `step` (1-based: the first update is step 1) for a peak `lr`.
 * inverse-sqrt (fairseq): linear warmup from initLr to lr, then lr * sqrt(warmup / step).
 * cosine: linear warmup, then cosine decay to minLr at totalSteps (default `maxSteps`,
 * the run's length, so that shortening or extending a run keeps the whole decay).
 */
export function learningRate(s: LrSchedule, lr: number, step: number, maxSteps?: number): number {
  const w = s.warmupSteps;
  if (s.type === "inverse-sqrt") {
    if (w > 0 && step < w) return s.initLr + ((lr - s.initLr) * step) / w;
    return lr * Math.sqrt(Math.max(1, w) / Math.max(1, step));
  }
  if (w > 0 && step < w) return (lr * step) / w;
  if (s.type === "constant") return lr;
  const total = s.totalSteps ?? maxSteps;
  if (total === undefined)
    throw new Error("cosine schedule: totalSteps is not set and no maxSteps was given");
  const progress = Math.min(1, Math.max(0, (step - w) / Math.max(1, total - w)));
  return s.minLr + ((lr - s.minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
}
