import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { LoaderConfigSchema, PRESET_NAMES, type TaskSpace } from "@polymoe/data";
import { DistillConfig, DistillError, studentConfig } from "@polymoe/distill";
import { BACKEND_CHOICES } from "@polymoe/kernels";
import { ModelConfig } from "@polymoe/model";
import { parallelConfigSchema } from "@polymoe/parallel";
import { ConfigError, parseConfig } from "@polymoe/schema";
import { TrainConfig } from "@polymoe/train";
import { z } from "zod";

import { deepMerge } from "./overrides.js";

/** The shipped configs, by name (apps/train/configs/<name>.json). */
export const CONFIG_DIR = fileURLToPath(new URL("../configs/", import.meta.url));
export const SHIPPED_CONFIGS = [
  "quick",
  "quick-tokenmoe",
  "quick-distill",
  "quick-distill-seq",
  "dense-base",
  "tokenmoe-base",
  "taskmoe-base",
] as const;

export const RunConfig = z.strictObject({
  data: z.strictObject({
    corpus: z.string().describe("a corpus prepared by `polymoe data prepare`"),
    prepare: z
      .enum(PRESET_NAMES as [string, ...string[]])
      .optional()
      .describe("if the corpus is missing, build it first with this preset"),
    loader: LoaderConfigSchema.prefault({}),
  }),
  model: z
    .looseObject({})
    .default({})
    .describe(
      "model settings (@polymoe/model ModelConfig; vocabSize and router numTasks come from the corpus; with distill.student 'extracted', fields set here override the student derived from the teacher)",
    ),
  train: TrainConfig,
  dev: z
    .strictObject({
      lossSentencesPerPair: z
        .int()
        .min(0)
        .default(100)
        .describe("dev sentences per direction for the dev loss"),
      bleuSentencesPerPair: z
        .int()
        .min(0)
        .default(25)
        .describe("dev sentences per direction decoded for BLEU"),
      beamSize: z.int().min(1).default(1),
      batchSize: z.int().min(1).default(64),
    })
    .prefault({}),
  distill: DistillConfig.optional().describe(
    "train the model as a student of a teacher checkpoint (@polymoe/distill): word-level or sequence-level KD",
  ),
  run: z.strictObject({
    dir: z.string().describe("run directory: resolved config, metrics, checkpoints"),
    backend: z.enum(BACKEND_CHOICES).default("auto"),
  }),
  parallel: parallelConfigSchema
    .prefault({})
    .describe(
      "ranks and how they share the work (@polymoe/parallel): ep, tp, zeroStage, bucketMb; " +
        "launch with `polymoe launch -n N -- train ...` (one process: everything 1 / 0)",
    ),
});
export type RunConfig = z.output<typeof RunConfig>;

/** Reads a config file (or a shipped config by name) as JSON. */
export function readConfigFile(nameOrPath: string): { source: string; value: unknown } {
  const shipped = (SHIPPED_CONFIGS as readonly string[]).includes(nameOrPath);
  const file = shipped ? path.join(CONFIG_DIR, `${nameOrPath}.json`) : path.resolve(nameOrPath);
  if (!existsSync(file)) {
    throw new ConfigError(
      [`config file ${file} does not exist (shipped configs: ${SHIPPED_CONFIGS.join(", ")})`],
      nameOrPath,
    );
  }
  try {
    return { source: file, value: JSON.parse(readFileSync(file, "utf8")) };
  } catch (e) {
    throw new ConfigError([`not valid JSON: ${(e as Error).message}`], file);
  }
}

/** Validates file + overrides (flags win). The model part is checked with placeholders for corpus-derived fields. */
export function resolveRunConfig(file: unknown, overrides: unknown, source?: string): RunConfig {
  const merged = deepMerge(file, overrides);
  const config = parseConfig(RunConfig, merged, source ? { source } : {});
  // A student derived from its teacher is checked once the teacher is read.
  if (config.distill?.student === "extracted") return config;
  // Structure check of the model now (before any data work); real values later.
  modelConfigFor(
    config,
    { languages: ["en", "xx"], pairs: ["en-xx"], taskTypes: ["translate", "denoise"] },
    16,
    source,
  );
  return config;
}

/** Number of task ids a task-level router reads, from the corpus's task space. */
export function taskCount(space: TaskSpace, key: "target-language" | "language-pair" | "task-type"): number {
  return key === "target-language"
    ? space.languages.length
    : key === "language-pair"
      ? space.pairs.length
      : space.taskTypes.length;
}

/**
 * The model config with the corpus-derived fields filled in: vocabSize and
 * padId from the tokenizer, numTasks of task-level routers from the task space.
 */
export function modelConfigFor(
  run: RunConfig,
  space: TaskSpace,
  vocabSize: number,
  source?: string,
): ModelConfig {
  const raw = structuredClone(run.model) as Record<string, unknown>;
  const problems: string[] = [];
  if (raw.vocabSize !== undefined && raw.vocabSize !== vocabSize) {
    problems.push(
      `model.vocabSize: ${raw.vocabSize}, but the corpus's tokenizer has ${vocabSize} tokens; leave it out`,
    );
  }
  raw.vocabSize = vocabSize;
  const moe = raw.moe as Record<string, Record<string, unknown> | undefined> | undefined;
  for (const stack of ["encoder", "decoder"] as const) {
    const p = moe?.[stack];
    const router = p?.router as Record<string, unknown> | undefined;
    if (!p || !router || (router.type !== "task" && router.type !== "static-task")) continue;
    const key =
      (p.taskKey as "target-language" | "language-pair" | "task-type" | undefined) ?? "target-language";
    const needed = taskCount(space, key);
    if (router.numTasks === undefined) router.numTasks = needed;
    else if ((router.numTasks as number) < needed) {
      problems.push(
        `model.moe.${stack}.router.numTasks: ${router.numTasks}, but the corpus has ${needed} '${key}' task ids; leave it out to use ${needed}`,
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems, source);
  return parseConfig(ModelConfig, raw, { prefix: "model", ...(source ? { source } : {}) });
}

/**
 * The model config of a distillation student: with distill.student 'extracted', the dense
 * model the teacher's extracted subnetwork would be (@polymoe/distill studentConfig) with the
 * run's model fields on top; otherwise the run's model section. Refuses MoE students.
 */
export function studentModelConfigFor(
  run: RunConfig,
  teacher: ModelConfig,
  space: TaskSpace,
  vocabSize: number,
  source?: string,
): ModelConfig {
  const model =
    run.distill?.student === "extracted"
      ? deepMerge(studentConfig(teacher) as unknown as Record<string, unknown>, run.model)
      : run.model;
  const config = modelConfigFor({ ...run, model }, space, vocabSize, source);
  if (config.moe?.encoder || config.moe?.decoder) {
    throw new DistillError(
      "NOT_DENSE",
      "the distillation student must be dense: remove model.moe (distill.student 'extracted' sizes it like the teacher's extracted subnetwork)",
    );
  }
  return config;
}
