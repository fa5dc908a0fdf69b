import { RouterConfig } from "@polymoe/routers";
import { z } from "zod";

/** Which per-sequence task id a task-level router reads. */
export const TaskKey = z.enum(["target-language", "language-pair", "task-type"]);
export type TaskKey = z.output<typeof TaskKey>;

/** MoE layers of one stack (encoder or decoder). */
export const MoePlacement = z.strictObject({
  layers: z
    .union([z.enum(["every-other", "all", "none"]), z.array(z.int().min(0))])
    .default("every-other")
    .describe("which layers get an MoE FFN: every other (1, 3, 5, ...), all, none, or explicit indices"),
  numExperts: z
    .union([z.int().min(1), z.array(z.int().min(1))])
    .describe("experts per MoE layer: one number, or one per MoE layer (a pyramid)"),
  dFF: z.int().min(1).optional().describe("expert hidden width (default: the model's dFF)"),
  router: RouterConfig,
  taskKey: TaskKey.default("target-language").describe("the task id task-level routers read"),
  residual: z.boolean().default(false).describe("Residual MoE: dense FFN + experts"),
  expertBias: z.boolean().default(true),
});
export type MoePlacement = z.output<typeof MoePlacement>;

export const ModelConfig = z.strictObject({
  vocabSize: z.int().min(2),
  dModel: z.int().min(1),
  heads: z.int().min(1),
  dFF: z.int().min(1),
  encoderLayers: z.int().min(0),
  decoderLayers: z.int().min(1),
  activation: z.enum(["relu", "gelu"]).default("gelu"),
  positions: z.enum(["sinusoidal", "learned"]).default("sinusoidal"),
  maxLength: z.int().min(1).default(256).describe("longest sequence (learned positions are sized by it)"),
  dropout: z.number().min(0).max(1).default(0.1),
  attentionDropout: z.number().min(0).max(1).default(0),
  layerNormEps: z.number().positive().default(1e-5),
  padId: z.int().min(0).default(0),
  moe: z
    .strictObject({ encoder: MoePlacement.optional(), decoder: MoePlacement.optional() })
    .optional()
    .describe("MoE layers; absent = a dense model"),
  ffnWidths: z
    .strictObject({
      encoder: z.record(z.string().regex(/^\d+$/), z.int().min(1)).optional(),
      decoder: z.record(z.string().regex(/^\d+$/), z.int().min(1)).optional(),
    })
    .optional()
    .describe(
      'hidden width of the dense FFN of particular layers ({"1": 2048}); extracted TaskMoE subnetworks use it',
    ),
});
export type ModelConfig = z.output<typeof ModelConfig>;
export type ModelConfigInput = z.input<typeof ModelConfig>;

/** Indices of the MoE layers of a stack of n layers. */
export function moeLayerIndices(p: MoePlacement | undefined, n: number): number[] {
  if (!p) return [];
  if (Array.isArray(p.layers)) return p.layers.filter((i) => i < n);
  if (p.layers === "none") return [];
  if (p.layers === "all") return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: n }, (_, i) => i).filter((i) => i % 2 === 1);
}
