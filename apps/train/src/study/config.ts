// The comparison study's config: one file naming the shared data/train/dev settings, the
// three architectures trained at equal compute per token, the distillation, the pruning
// and the evaluation.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { studentConfig } from "@polymoe/distill";
import { BACKEND_CHOICES } from "@polymoe/kernels";
import type { ModelConfig } from "@polymoe/model";
import { ConfigError, parseConfig } from "@polymoe/schema";
import { z } from "zod";

import { CONFIG_DIR, modelConfigFor, RunConfig, resolveRunConfig } from "../config.js";
import { deepMerge } from "../overrides.js";

const Section = z.looseObject({});

export const EvalSplit = z.strictObject({
  name: z
    .string()
    .describe("a split of the corpus: test, dev, udhr (test-udhr), handbook (test-handbook), ..."),
  maxSentences: z.int().min(1).optional().describe("first N sentences of each direction (default: all)"),
});

export const StudyConfig = z.strictObject({
  dir: z.string().describe("study directory: one subdirectory per stage, markers in <dir>/stages"),
  backend: z.enum(BACKEND_CHOICES).default("auto"),
  data: RunConfig.shape.data.describe(
    "the corpus and loader every model trains on (polymoe train's data section)",
  ),
  train: Section.describe("polymoe train's train section, shared by the three base models"),
  dev: Section.default({}).describe("polymoe train's dev section, shared"),
  models: z
    .strictObject({
      dense: Section.describe("model section of the dense baseline"),
      tokenmoe: Section.describe("model section of the token-routed MoE (also the distillation teacher)"),
      taskmoe: Section.describe("model section of the task-routed MoE (every MoE layer task-routed)"),
    })
    .describe("the three architectures; the same active FFN width per token at every layer (checked)"),
  allowUnequalCompute: z
    .boolean()
    .default(false)
    .describe("run even if the models' active FFN widths per token differ (the comparison is then unfair)"),
  distill: z
    .strictObject({
      config: Section.default({ mode: "word" }).describe(
        "polymoe train's distill section without teacher (the TokenMoE) and cache.dir (inside the stage); word-level by default",
      ),
      train: Section.default({}).describe("overrides of the train section for the student"),
    })
    .prefault({}),
  prune: z
    .strictObject({
      keep: z
        .array(z.int().min(1))
        .min(1)
        .default([2])
        .describe("experts kept per MoE layer, one pruned model each"),
      split: z.string().default("dev").describe("where expert usage is measured"),
      maxSentences: z.int().min(1).default(100),
    })
    .prefault({}),
  eval: z
    .strictObject({
      splits: z
        .array(EvalSplit)
        .min(1)
        .default([{ name: "test" }]),
      beamSize: z.int().min(1).default(1),
      lengthPenalty: z.number().default(1),
      batchSize: z.int().min(1).default(32),
    })
    .prefault({}),
});
export type StudyConfig = z.output<typeof StudyConfig>;

export const STUDY_MODELS = ["dense", "tokenmoe", "taskmoe"] as const;
export type StudyModel = (typeof STUDY_MODELS)[number];

/** Reads and validates a study config file (JSON). */
export function readStudyConfig(file: string): { source: string; config: StudyConfig } {
  const shipped = path.join(CONFIG_DIR, `${file}.json`);
  const source = /^study-[\w-]+$/.test(file) && existsSync(shipped) ? shipped : path.resolve(file);
  if (!existsSync(source)) {
    throw new ConfigError(
      [`study config ${source} does not exist (shipped: apps/train/configs/study-*.json)`],
      file,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(source, "utf8"));
  } catch (e) {
    throw new ConfigError([`not valid JSON: ${(e as Error).message}`], source);
  }
  return { source, config: parseStudyConfig(value, source) };
}

/** The polymoe train config of one of the three base models. */
export function baseRunConfig(study: StudyConfig, model: StudyModel, source?: string): RunConfig {
  return resolveRunConfig(
    {
      data: study.data,
      model: study.models[model],
      train: study.train,
      dev: study.dev,
      run: { dir: path.join(study.dir, model), backend: study.backend },
    },
    {},
    source,
  );
}

/** The polymoe train config of the distilled student (teacher: the study's TokenMoE). */
export function studentRunConfig(study: StudyConfig, source?: string): RunConfig {
  const dir = path.join(study.dir, "student");
  const distill = deepMerge(
    { mode: "word", student: "extracted", initFromTeacher: true },
    study.distill.config,
  ) as Record<string, unknown>;
  distill.teacher = path.join(study.dir, "tokenmoe");
  if (distill.mode !== "sequence") {
    distill.cache = { ...(distill.cache as object | undefined), dir: path.join(dir, "teacher-cache") };
  }
  return resolveRunConfig(
    {
      data: study.data,
      model: {},
      train: deepMerge(study.train, study.distill.train),
      dev: study.dev,
      distill,
      run: { dir, backend: study.backend },
    },
    {},
    source,
  );
}

/**
 * Active FFN width per token at every layer ("encoder.1": 1024, ...): a dense layer's
 * width, k x expert width at an MoE layer (+ the dense FFN of Residual MoE) — what
 * studentConfig folds an MoE layer into.
 */
export function activeFfnWidths(m: ModelConfig): Record<string, number> {
  const dense = studentConfig(m);
  const out: Record<string, number> = {};
  for (const stack of ["encoder", "decoder"] as const) {
    const n = stack === "encoder" ? m.encoderLayers : m.decoderLayers;
    for (let i = 0; i < n; i++) out[`${stack}.${i}`] = dense.ffnWidths?.[stack]?.[String(i)] ?? dense.dFF;
  }
  return out;
}

/** Validates the study config and checks the three models for equal compute per token. */
export function parseStudyConfig(value: unknown, source?: string): StudyConfig {
  const study = parseConfig(StudyConfig, value, source ? { source } : {});
  const space = { languages: ["en", "xx"], pairs: ["en-xx", "xx-en"], taskTypes: ["translate", "denoise"] };
  const shapes = STUDY_MODELS.map((m) => {
    const run = baseRunConfig(study, m, source);
    const config = modelConfigFor(run, space as never, 16, source);
    return { m, config, widths: activeFfnWidths(config) };
  });
  const problems: string[] = [];
  const [ref, ...rest] = shapes as [(typeof shapes)[number], ...typeof shapes];
  if (ref.config.moe) problems.push("models.dense: the dense baseline has a moe section; remove it");
  for (const m of ["tokenmoe", "taskmoe"] as const) {
    const c = shapes.find((s) => s.m === m)?.config as ModelConfig;
    if (!c.moe?.encoder && !c.moe?.decoder)
      problems.push(`models.${m}: no moe section; it must be an MoE model`);
  }
  const taskmoe = shapes.find((s) => s.m === "taskmoe")?.config as ModelConfig;
  for (const stack of ["encoder", "decoder"] as const) {
    const t = taskmoe.moe?.[stack]?.router.type;
    if (t && t !== "task" && t !== "static-task") {
      problems.push(
        `models.taskmoe.moe.${stack}.router.type: '${t}'; every MoE layer of the TaskMoE must be task-routed ('task') for its subnetworks to be extractable`,
      );
    }
  }
  const tokenmoe = shapes.find((s) => s.m === "tokenmoe")?.config as ModelConfig;
  for (const stack of ["encoder", "decoder"] as const) {
    const t = tokenmoe.moe?.[stack]?.router.type;
    if (t === "task" || t === "static-task") {
      problems.push(
        `models.tokenmoe.moe.${stack}.router.type: '${t}' is task-level; the TokenMoE routes tokens (topk, ...)`,
      );
    }
  }
  if (!study.allowUnequalCompute) {
    for (const s of rest) {
      for (const field of ["dModel", "heads", "encoderLayers", "decoderLayers"] as const) {
        if (s.config[field] !== ref.config[field]) {
          problems.push(
            `models.${s.m}.${field}: ${s.config[field]}, models.dense.${field}: ${ref.config[field]}; they must match`,
          );
        }
      }
      for (const [layer, w] of Object.entries(ref.widths)) {
        const v = s.widths[layer];
        if (v !== undefined && v !== w) {
          problems.push(
            `models.${s.m}: active FFN width per token at ${layer} is ${v}, the dense model's ${w}; equal compute per token needs k x expert dFF = dense width (or set allowUnequalCompute)`,
          );
        }
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems, source);
  // The student's config is checked too (before anything is trained).
  studentRunConfig(study, source);
  return study;
}
