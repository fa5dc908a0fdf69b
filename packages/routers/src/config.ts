import { z } from "zod";

const capacityFields = (defaults: { capacityFactor: number; evalCapacityFactor: number }) => ({
  capacityFactor: z
    .number()
    .default(defaults.capacityFactor)
    .describe("training: slots per expert = ceil(f * tokens * k / experts); <= 0 = dropless"),
  evalCapacityFactor: z
    .number()
    .default(defaults.evalCapacityFactor)
    .describe("the same at evaluation; <= 0 = dropless"),
  minCapacity: z.int().min(0).default(4).describe("lower bound on slots per expert"),
  overflow: z
    .enum(["position", "random", "score"])
    .default("position")
    .describe(
      "who keeps a slot when an expert overflows: token order, Random Token Selection (random priority), or the highest gate score",
    ),
});

export const TemperatureSchedule = z.strictObject({
  start: z.number().positive(),
  end: z.number().positive(),
  steps: z.int().positive().describe("steps from start to end; constant afterwards"),
  kind: z.enum(["linear", "cosine", "exponential"]).default("linear"),
});
export type TemperatureSchedule = z.output<typeof TemperatureSchedule>;

const temperature = z
  .union([z.number().positive(), TemperatureSchedule])
  .default(1)
  .describe("gate logits are divided by this (fixed, or scheduled over training steps)");

const noise = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("none") }),
    z.strictObject({
      type: z.literal("jitter"),
      eps: z.number().positive().max(1).default(0.01).describe("router input scaled by U(1 - eps, 1 + eps)"),
    }),
    z.strictObject({
      type: z.literal("noisy-topk").describe("logits + N(0,1) * softplus(x W_noise), learned W_noise"),
    }),
  ])
  .default({ type: "none" })
  .describe("training-time gate noise");

const gateFields = {
  softmaxOrder: z
    .enum(["before", "after"])
    .default("before")
    .describe("softmax over all experts then top-k (GShard/Switch), or over the top-k logits only"),
  renormalize: z.boolean().default(true).describe("k >= 2: rescale a token's k weights to sum to 1"),
  secondExpertSampling: z
    .boolean()
    .default(false)
    .describe(
      "GShard random routing: keep choices after the first with probability min(1, 2 w_j / (w_0 + w_j))",
    ),
  noise,
  temperature,
  initStd: z.number().positive().default(0.02).describe("std of the normal init of gate weights"),
};

export const TopKRouterConfig = z.strictObject({
  type: z.literal("topk"),
  k: z.int().min(1).default(2).describe("experts per token (1 = Switch, 2 = GShard)"),
  ...gateFields,
  ...capacityFields({ capacityFactor: 1.25, evalCapacityFactor: 2 }),
});

export const TaskRouterConfig = z.strictObject({
  type: z.literal("task"),
  k: z.int().min(1).default(2),
  numTasks: z.int().min(1).describe("number of task ids (e.g. target languages or language pairs)"),
  taskEmbedDim: z.int().min(1).default(64).describe("width of the learned task embedding the gate reads"),
  ...gateFields,
  ...capacityFields({ capacityFactor: 0, evalCapacityFactor: 0 }),
});

export const StaticTaskRouterConfig = z.strictObject({
  type: z.literal("static-task"),
  k: z.int().min(1).default(2),
  numTasks: z.int().min(1),
  ...capacityFields({ capacityFactor: 0, evalCapacityFactor: 0 }),
});

export const ExpertChoiceRouterConfig = z.strictObject({
  type: z.literal("expert-choice"),
  k: z
    .number()
    .positive()
    .default(2)
    .describe("average experts per token: capacity = ceil(f * tokens * k / experts)"),
  capacityFactor: z.number().positive().default(1),
  evalCapacityFactor: z.number().positive().default(1),
  minCapacity: z.int().min(0).default(1),
  noise,
  temperature,
  initStd: z.number().positive().default(0.02),
});

export const RouterConfig = z.discriminatedUnion("type", [
  TopKRouterConfig,
  TaskRouterConfig,
  StaticTaskRouterConfig,
  ExpertChoiceRouterConfig,
]);

export type TopKRouterConfig = z.output<typeof TopKRouterConfig>;
export type TaskRouterConfig = z.output<typeof TaskRouterConfig>;
export type StaticTaskRouterConfig = z.output<typeof StaticTaskRouterConfig>;
export type ExpertChoiceRouterConfig = z.output<typeof ExpertChoiceRouterConfig>;
export type RouterConfig = z.output<typeof RouterConfig>;
/** What users write: every field with a default may be omitted. */
export type RouterConfigInput = z.input<typeof RouterConfig>;

/**
 * Gate temperature at a training step; without a step (evaluation, decoding,
 * subnetwork extraction) a schedule's final temperature.
 */
export function temperatureAt(t: number | TemperatureSchedule, step?: number): number {
  if (typeof t === "number") return t;
  if (step === undefined) return t.end;
  const x = Math.min(1, Math.max(0, step / t.steps));
  switch (t.kind) {
    case "linear":
      return t.start + (t.end - t.start) * x;
    case "cosine":
      return t.end + ((t.start - t.end) * (1 + Math.cos(Math.PI * x))) / 2;
    case "exponential":
      return t.start * (t.end / t.start) ** x;
  }
}
