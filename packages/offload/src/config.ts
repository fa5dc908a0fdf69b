import { z } from "zod";

/**
 * Memory offload (ZeRO-Offload / ZeRO-Infinity): optimizer moments (and, off
 * the native backend, fp32 master weights) live in a tiered store — host
 * memory up to a budget, the rest in files under `dir`.
 */
export const OffloadConfig = z.strictObject({
  dir: z
    .string()
    .min(1)
    .describe("directory for offloaded tensors (an NVMe/SSD path); created if missing, must be writable"),
  hostMemoryGB: z
    .number()
    .positive()
    .describe(
      "host memory budget of the whole process in GiB: resident parameters and gradients, the store's cache and reserveGB",
    ),
  reserveGB: z
    .number()
    .min(0)
    .default(0.5)
    .describe(
      "part of hostMemoryGB kept for activations and the runtime, the native backend's buffer pool " +
        "(POLYMOE_POOL_MB) included; not used by the store's cache",
    ),
  experts: z
    .enum(["dense", "routed", "paged"])
    .default("dense")
    .describe(
      "dense: every expert is updated every step (same result as no offload); routed: only experts the batch " +
        "routed tokens to are paged in and updated (lazy Adam: others keep parameters and moments); paged: " +
        "expert parameters, gradients and moments live in the store, not in tfjs variables — each step fetches " +
        "only the experts the batch routes to (the model must be built with a PagedExperts pager; same updates " +
        "as routed)",
    ),
  expertCacheGB: z
    .number()
    .positive()
    .default(0.25)
    .describe(
      "experts: paged — part of hostMemoryGB the paged experts' store may cache (parameters and moments of " +
        "recently used experts); the rest of them is on disk",
    ),
  expertInit: z
    .enum(["eager", "first-use"])
    .default("eager")
    .describe(
      "experts: paged — eager: every expert's initial parameters are written to the store before training; " +
        "first-use: an expert's are drawn (same values: per-expert seeds) when a batch first routes to it",
    ),
  fsync: z
    .boolean()
    .default(true)
    .describe(
      "fsync each tensor file before renaming it into place (the store is rebuilt from checkpoints on resume, " +
        "so false trades nothing durable for write speed)",
    ),
  enforceBudget: z
    .boolean()
    .default(true)
    .describe("stop with an error when the process's peak RSS exceeds hostMemoryGB after a step"),
});
export type OffloadConfig = z.output<typeof OffloadConfig>;
export type OffloadConfigInput = z.input<typeof OffloadConfig>;
