import { RouterConfig } from "@polymoe/routers";
import { z } from "zod";

export const MoeLayerConfig = z.strictObject({
  numExperts: z.int().min(1).describe("experts in this layer (all ranks together)"),
  dFF: z.int().min(1).describe("hidden width of each expert FFN"),
  activation: z.enum(["relu", "gelu"]).default("gelu"),
  expertBias: z.boolean().default(true).describe("biases in the expert FFNs"),
  router: RouterConfig,
  residual: z
    .boolean()
    .default(false)
    .describe(
      "Residual MoE (DeepSpeed PR-MoE): a dense FFN beside the experts, mixed per token by a learned 2-way softmax",
    ),
});
export type MoeLayerConfig = z.output<typeof MoeLayerConfig>;
export type MoeLayerConfigInput = z.input<typeof MoeLayerConfig>;
