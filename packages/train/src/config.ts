import { OffloadConfig } from "@polymoe/offload";
import { z } from "zod";

import { OptimizerConfig } from "./optimizer.js";

export const InitConfig = z
  .strictObject({
    expertsFromDense: z
      .strictObject({
        checkpoint: z.string().describe("a trained dense model's checkpoint directory"),
        noise: z.number().min(0).default(0).describe("std of noise added to each copied expert"),
      })
      .optional(),
    aggregateExperts: z
      .strictObject({
        checkpoints: z.array(z.string()).min(1),
        shared: z.enum(["first", "average"]).default("average"),
      })
      .optional(),
  })
  .default({});
export type InitConfig = z.output<typeof InitConfig>;

export const TrainConfig = z.strictObject({
  seed: z.int().default(1).describe("parameter init, routing and dropout RNG"),
  maxSteps: z.int().min(1).describe("optimizer updates to train for"),
  accumulate: z.int().min(1).default(1).describe("micro-batches per update (gradient accumulation)"),
  optimizer: OptimizerConfig.default({
    type: "adamw",
    lr: 5e-4,
    betas: [0.9, 0.98],
    eps: 1e-8,
    weightDecay: 0,
    decayNormsAndBiases: false,
    clipNorm: 1,
    schedule: { type: "inverse-sqrt", warmupSteps: 4000, initLr: 1e-7 },
  }),
  labelSmoothing: z.number().min(0).max(0.99).default(0.1),
  auxLossCoef: z
    .number()
    .min(0)
    .default(0.01)
    .describe("weight of the load-balancing loss (summed over MoE layers)"),
  zLossCoef: z.number().min(0).default(0.001).describe("weight of the router z-loss"),
  logEvery: z.int().min(1).default(10),
  evalEvery: z.int().min(0).default(200).describe("steps between dev evaluations (0 = only at the end)"),
  saveEvery: z.int().min(0).default(500).describe("steps between checkpoints (0 = only at the end)"),
  keepLast: z.int().min(0).default(3).describe("step checkpoints kept besides last and best (0 = all)"),
  maxBadSteps: z
    .int()
    .min(1)
    .default(5)
    .describe("consecutive steps with a non-finite loss or gradient before the run stops"),
  init: InitConfig,
  offload: OffloadConfig.optional().describe(
    "keep optimizer moments (and master weights off the native backend) in a host-memory/disk store under a budget",
  ),
});
export type TrainConfig = z.output<typeof TrainConfig>;
export type TrainConfigInput = z.input<typeof TrainConfig>;
