// The `distill` section of a training run: one typed, strict config, validated once.
import { parseConfig } from "@polymoe/schema";
import { z } from "zod";

const common = {
  teacher: z
    .string()
    .min(1)
    .describe(
      "the teacher: a checkpoint directory, or a run directory (its checkpoint_best, else checkpoint_last)",
    ),
  student: z
    .enum(["extracted", "model"])
    .default("extracted")
    .describe(
      "'extracted': a dense student the size of an extracted TaskMoE subnetwork of the teacher (each MoE layer a dense FFN of width k x expert dFF), the model section's fields on top; 'model': the model section alone defines it",
    ),
  initFromTeacher: z
    .boolean()
    .default(false)
    .describe(
      "start the student from the teacher's non-expert weights (embeddings, attention, norms, dense FFNs)",
    ),
};

export const CacheConfig = z.strictObject({
  dir: z
    .string()
    .min(1)
    .describe("cache directory: records are read when present, computed and written when not"),
  topK: z.int().min(1).default(8).describe("teacher entries kept per target token"),
  tail: z
    .enum(["spread", "renormalize"])
    .default("spread")
    .describe(
      "the mass outside the top k: spread uniformly over the other tokens, or dropped and the k renormalised",
    ),
  recordsPerShard: z
    .int()
    .min(1)
    .default(64)
    .describe("batches per cache file (each rewritten atomically when flushed)"),
});
export type CacheConfig = z.output<typeof CacheConfig>;

export const WordDistillConfig = z.strictObject({
  mode: z
    .literal("word")
    .describe("word-level KD: KL to the teacher's softened distribution per target token"),
  ...common,
  alpha: z
    .number()
    .min(0)
    .max(1)
    .default(0.5)
    .describe("weight of the KL term; 1 - alpha weighs the label-smoothed cross-entropy to the references"),
  temperature: z
    .number()
    .positive()
    .default(1)
    .describe("softmax temperature of teacher and student in the KL"),
  cache: CacheConfig.optional().describe(
    "cache the teacher's top-k log-probabilities; absent = the full teacher distribution, computed on the fly",
  ),
});

export const SequenceDistillConfig = z.strictObject({
  mode: z.literal("sequence").describe("sequence-level KD: train on the teacher's beam outputs"),
  ...common,
  corpus: z
    .string()
    .min(1)
    .optional()
    .describe("where the distilled corpus is written (default <run.dir>/seqkd-corpus)"),
  beamSize: z.int().min(1).default(4),
  lengthPenalty: z.number().default(1),
  batchSize: z.int().min(1).default(32).describe("sentences the teacher decodes together"),
  maxPairsPerLanguage: z
    .int()
    .min(0)
    .default(0)
    .describe("0 = translate every training pair; else a seeded sample of this many per language"),
  seed: z.int().default(1).describe("seed of the sample"),
  chunkSize: z.int().min(1).default(512).describe("sentences per resumable unit of work"),
});

export const DistillConfig = z.discriminatedUnion("mode", [WordDistillConfig, SequenceDistillConfig]);
export type DistillConfig = z.output<typeof DistillConfig>;
export type DistillConfigInput = z.input<typeof DistillConfig>;
export type WordDistillConfig = z.output<typeof WordDistillConfig>;
export type SequenceDistillConfig = z.output<typeof SequenceDistillConfig>;

/** Validates a distill section; ConfigError lists one line per problem, prefixed `distill.`. */
export function parseDistillConfig(input: unknown, source?: string): DistillConfig {
  return parseConfig(DistillConfig, input, { prefix: "distill", ...(source ? { source } : {}) });
}
