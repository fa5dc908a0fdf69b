// The Task-level MoE comparison study (Kudugunta et al. 2021, tables 2-4) as resumable
// stages: train a dense model, a TokenMoE and a TaskMoE at equal compute per token;
// distil the TokenMoE into a dense student the size of an extracted TaskMoE subnetwork;
// extract the TaskMoE per task; prune the TokenMoE's experts; evaluate everything on
// the same held-out sets; write results.md with plots. Every stage is the existing
// code (runTraining, extractTask, pruneExperts, evaluate); this file only wires them.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import type { EvalSet } from "@polymoe/data";
import {
  type DirectionResult,
  type EvalReport,
  evaluate,
  expertUsage,
  extractTask,
  type LayerUsage,
  type LoadedModel,
  listAvailableSplits,
  loadModel,
  loadSplit,
  pruneExperts,
  resolveCheckpointDir,
  summarizeDirections,
  usageTotals,
} from "@polymoe/eval";
import { useBackend } from "@polymoe/kernels";
import type { ModelConfig } from "@polymoe/model";

import type { RunConfig } from "../config.js";
import { runTraining } from "../run.js";
import { baseRunConfig, type StudyConfig, studentRunConfig } from "./config.js";
import { writeStudyReport } from "./report.js";
import { runStages, type Stage, type StageEvent, writeJsonAtomic } from "./stages.js";

export type StudyErrorCode = "INTERRUPTED" | "MISSING_INPUT" | "UNSUPPORTED";

/**
 * The study's errors. INTERRUPTED: a training stage stopped by SIGINT/SIGTERM (its
 * checkpoint saved; rerun the study to continue).
 */
export class StudyError extends Error {
  override readonly name = "StudyError";
  constructor(
    readonly code: StudyErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface TrainOutput {
  runDir: string;
  steps: number;
  seconds: number;
  tokens: number;
  devLoss?: number;
  devBleu?: number;
}

export interface ExtractOutput {
  /** The task each subnetwork serves (a target language or a pair) -> its checkpoint. */
  tasks: Record<string, { dir: string; parameters: number; bytes: number }>;
  sourceParameters: number;
  taskKey: "target-language" | "language-pair";
}

export interface PruneOutput {
  models: { keep: number; dir: string; parameters: number }[];
}

/** One direction's scores as the study keeps them (hypotheses are in files). */
export type DirectionScores = Omit<DirectionResult, "hypotheses">;

export interface SplitScores {
  split: string;
  directions: DirectionScores[];
  averages: EvalReport["averages"];
  highResource: string[];
  decodeTokensPerSecond: number;
}

export interface EvalOutput {
  label: string;
  /** Parameters needed at inference (for extracted subnetworks: the mean over tasks). */
  parameters: number;
  /** Per split name. */
  splits: Record<string, SplitScores>;
  /** Expert usage per direction on the first split (MoE models), in usage.json. */
  usage?: string;
  /** For the extracted TaskMoE: per direction, does it equal the full TaskMoE? */
  equivalence?: {
    split: string;
    pair: string;
    task: string;
    bleuFull: number;
    bleuExtracted: number;
    identicalHypotheses: number;
    sentences: number;
  }[];
}

export interface StudyOptions {
  log?: (line: string) => void;
  until?: string;
  /** Where the config came from (error messages). */
  source?: string;
}

const stripHyps = ({ hypotheses: _h, ...d }: DirectionResult): DirectionScores => d;

function trainStage(name: string, run: RunConfig, source: string | undefined): Stage<undefined> {
  return {
    name,
    config: run,
    async run(_dir, ctx) {
      const summary = await runTraining(run, { log: ctx.log, ...(source ? { source } : {}) });
      if (summary.stoppedBy === "signal") {
        throw new StudyError(
          "INTERRUPTED",
          `${name}: stopped by a signal at step ${summary.steps} (checkpoint saved)`,
        );
      }
      const out: TrainOutput = {
        runDir: run.run.dir,
        steps: summary.steps,
        seconds: summary.seconds,
        tokens: summary.tokens,
        ...(summary.lastDev ? { devLoss: summary.lastDev.loss } : {}),
        ...(summary.lastDev?.bleu !== undefined ? { devBleu: summary.lastDev.bleu } : {}),
      };
      return out;
    },
  };
}

/** The held-out sets of every configured split (each direction both ways). */
async function evalSets(
  loaded: LoadedModel,
  study: StudyConfig,
): Promise<{ split: string; sets: EvalSet[] }[]> {
  const corpus = loaded.corpus;
  if (!corpus)
    throw new StudyError(
      "MISSING_INPUT",
      `${loaded.dir}: the training corpus is gone; the study cannot evaluate`,
    );
  const available = listAvailableSplits(corpus);
  const alias: Record<string, string> = { udhr: "test-udhr", handbook: "test-handbook" };
  const out: { split: string; sets: EvalSet[] }[] = [];
  for (const s of study.eval.splits) {
    const split = alias[s.name] ?? s.name;
    if (!available.includes(split)) {
      throw new StudyError(
        "MISSING_INPUT",
        `eval.splits: the corpus has no split '${s.name}'; available: ${available.join(", ")}`,
      );
    }
    out.push({ split, sets: await loadSplit(corpus, split, s.maxSentences) });
  }
  return out;
}

function trainPairsOf(loaded: LoadedModel): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pair, t] of Object.entries(loaded.corpus?.manifest.tokens ?? {}))
    out[pair.split("-")[1] as string] = t.pairs;
  return out;
}

function writeHypotheses(dir: string, split: string, directions: readonly DirectionResult[]): void {
  const d = path.join(dir, split, "hypotheses");
  mkdirSync(d, { recursive: true });
  for (const r of directions) writeFileSync(path.join(d, `${r.pair}.txt`), `${r.hypotheses.join("\n")}\n`);
}

/** Evaluates one checkpoint on every split; expert usage on the first split for MoE models. */
async function evalCheckpoint(
  checkpoint: string,
  label: string,
  study: StudyConfig,
  dir: string,
  log: (l: string) => void,
  namespace: string,
): Promise<{ out: EvalOutput; hyps: Record<string, DirectionResult[]> }> {
  const loaded = await loadModel(checkpoint, { namespace });
  try {
    const splits: EvalOutput["splits"] = {};
    const hyps: Record<string, DirectionResult[]> = {};
    let usage: LayerUsage[] = [];
    for (const [i, { split, sets }] of (await evalSets(loaded, study)).entries()) {
      const r = evaluate(loaded, split, sets, {
        beamSize: study.eval.beamSize,
        lengthPenalty: study.eval.lengthPenalty,
        batchSize: study.eval.batchSize,
        trainPairs: trainPairsOf(loaded),
        onDirection: (d) =>
          log(
            `  ${label} ${split} ${d.pair.padEnd(9)} BLEU ${d.bleu.toFixed(2).padStart(6)}  chrF ${d.chrf.toFixed(2).padStart(6)}  (${d.sentences} sentences, ${Math.round(d.outputTokens / d.seconds)} tokens/s)`,
          ),
      });
      hyps[split] = r.directions;
      writeHypotheses(dir, split, r.directions);
      splits[split] = {
        split,
        directions: r.directions.map(stripHyps),
        averages: r.averages,
        highResource: r.highResource,
        decodeTokensPerSecond: r.decodeTokensPerSecond,
      };
      if (i === 0 && loaded.model.moeLayers().length > 0)
        usage = expertUsage(loaded.model, loaded.tokenizer, loaded.space, sets);
    }
    const out: EvalOutput = { label, parameters: loaded.model.numParameters(), splits };
    if (usage.length > 0) {
      writeJsonAtomic(path.join(dir, "usage.json"), usage);
      out.usage = path.join(dir, "usage.json");
    }
    return { out, hyps };
  } finally {
    loaded.model.dispose();
  }
}

/** The stages of a study, in order. */
export function studyStages(study: StudyConfig, source?: string): Stage<undefined>[] {
  const runs = {
    dense: baseRunConfig(study, "dense", source),
    tokenmoe: baseRunConfig(study, "tokenmoe", source),
    taskmoe: baseRunConfig(study, "taskmoe", source),
  };
  const student = studentRunConfig(study, source);
  const evalSettings = study.eval;
  const evalStage = (
    name: string,
    label: string,
    checkpoint: (outputs: Record<string, unknown>) => string,
  ): Stage<undefined> => ({
    name,
    config: { eval: evalSettings, label },
    async run(dir, ctx) {
      const { out } = await evalCheckpoint(
        checkpoint(ctx.outputs),
        label,
        study,
        dir,
        ctx.log,
        name.replace(/\W/g, "_"),
      );
      return out;
    },
  });

  const stages: Stage<undefined>[] = [
    trainStage("dense", runs.dense, source),
    trainStage("tokenmoe", runs.tokenmoe, source),
    trainStage("taskmoe", runs.taskmoe, source),
    trainStage("student", student, source),
    {
      name: "extract",
      config: { from: "taskmoe" },
      async run(dir, ctx) {
        const full = resolveCheckpointDir(runs.taskmoe.run.dir);
        const loaded = await loadModel(full, { namespace: "studyExtractProbe" });
        const config = loaded.state.model as ModelConfig;
        const sourceParameters = loaded.model.numParameters();
        const keys = (["encoder", "decoder"] as const).flatMap((s) =>
          config.moe?.[s] ? [config.moe[s].taskKey] : [],
        );
        if (keys.includes("task-type")) {
          loaded.model.dispose();
          throw new StudyError(
            "UNSUPPORTED",
            "extract: a TaskMoE routed by task type cannot be served per language; route by target-language or language-pair",
          );
        }
        const taskKey = keys.includes("language-pair") ? "language-pair" : "target-language";
        // Every task of the model's task space (translation pairs for pair routing).
        const tasks =
          taskKey === "language-pair"
            ? loaded.space.pairs.filter((p) => p.split("-")[0] !== p.split("-")[1])
            : [...loaded.space.languages];
        loaded.model.dispose();
        const out: ExtractOutput = { tasks: {}, sourceParameters, taskKey };
        for (const task of tasks) {
          const r = await extractTask(full, task, path.join(dir, task));
          out.tasks[task] = { dir: r.dir, parameters: r.parameters, bytes: r.bytes };
          ctx.log(
            `  extracted '${task}': ${r.parameters.toLocaleString("en-US")} parameters (${((100 * r.parameters) / r.sourceParameters).toFixed(1)}% of the TaskMoE)`,
          );
        }
        return out;
      },
    },
    {
      name: "prune",
      config: { from: "tokenmoe", prune: study.prune },
      async run(dir, ctx) {
        const full = resolveCheckpointDir(runs.tokenmoe.run.dir);
        const loaded = await loadModel(full, { namespace: "studyPruneUsage" });
        let totals: Map<string, number[]>;
        try {
          const corpus = loaded.corpus;
          if (!corpus) throw new StudyError("MISSING_INPUT", `${full}: the training corpus is gone`);
          const sets = await loadSplit(corpus, study.prune.split, study.prune.maxSentences);
          if (sets.length === 0)
            throw new StudyError(
              "MISSING_INPUT",
              `prune.split: the corpus has no split '${study.prune.split}'`,
            );
          totals = usageTotals(expertUsage(loaded.model, loaded.tokenizer, loaded.space, sets));
        } finally {
          loaded.model.dispose();
        }
        const out: PruneOutput = { models: [] };
        for (const keep of study.prune.keep) {
          const r = await pruneExperts(full, keep, totals, path.join(dir, `keep-${keep}`));
          out.models.push({ keep, dir: r.dir, parameters: r.parameters });
          ctx.log(
            `  kept ${keep} experts per layer: ${r.parameters.toLocaleString("en-US")} parameters -> ${r.dir}`,
          );
        }
        return out;
      },
    },
    evalStage("eval-dense", "Dense", () => runs.dense.run.dir),
    evalStage("eval-tokenmoe", "TokenMoE", () => runs.tokenmoe.run.dir),
    evalStage("eval-taskmoe", "TaskMoE", () => runs.taskmoe.run.dir),
    {
      name: "eval-extracted",
      config: { eval: evalSettings },
      async run(dir, ctx) {
        const ex = ctx.outputs.extract as ExtractOutput;
        const full = ctx.outputs["eval-taskmoe"] as EvalOutput;
        const splits: EvalOutput["splits"] = {};
        const equivalence: NonNullable<EvalOutput["equivalence"]> = [];
        const perSplit = new Map<string, DirectionResult[]>();
        let params = 0;
        for (const [task, t] of Object.entries(ex.tasks)) {
          params += t.parameters;
          const loaded = await loadModel(t.dir, { namespace: `studyExtracted_${task.replace(/\W/g, "_")}` });
          try {
            for (const { split, sets } of await evalSets(loaded, study)) {
              const mine = sets.filter((s) => (ex.taskKey === "language-pair" ? s.pair : s.tgtLang) === task);
              const r = evaluate(loaded, split, mine, {
                beamSize: study.eval.beamSize,
                lengthPenalty: study.eval.lengthPenalty,
                batchSize: study.eval.batchSize,
                onDirection: (d) =>
                  ctx.log(
                    `  extracted[${task}] ${split} ${d.pair.padEnd(9)} BLEU ${d.bleu.toFixed(2).padStart(6)}  chrF ${d.chrf.toFixed(2).padStart(6)}`,
                  ),
              });
              perSplit.set(split, [...(perSplit.get(split) ?? []), ...r.directions]);
            }
          } finally {
            loaded.model.dispose();
          }
        }
        // Averages as evaluate() computes them, over the directions of every task.
        const trainPairs: Record<string, number> = {};
        const anyTask = Object.values(ex.tasks)[0];
        if (anyTask) {
          const probe = await loadModel(anyTask.dir, { namespace: "studyExtractedPairs" });
          Object.assign(trainPairs, trainPairsOf(probe));
          probe.model.dispose();
        }
        for (const [split, directions] of perSplit) {
          const order = full.splits[split]?.directions.map((d) => d.pair) ?? [];
          directions.sort((a, b) => order.indexOf(a.pair) - order.indexOf(b.pair));
          writeHypotheses(dir, split, directions);
          const s = summarizeDirections(directions, trainPairs);
          splits[split] = { split, directions: directions.map(stripHyps), ...s };
          // The claim of the paper: the subnetwork is the full model on its task.
          for (const d of directions) {
            const f = full.splits[split]?.directions.find((x) => x.pair === d.pair);
            const fullHyps = readLines(
              path.join(study.dir, "eval-taskmoe", split, "hypotheses", `${d.pair}.txt`),
            );
            const same = fullHyps ? d.hypotheses.filter((h, i) => h === fullHyps[i]).length : -1;
            equivalence.push({
              split,
              pair: d.pair,
              task: ex.taskKey === "language-pair" ? d.pair : d.tgtLang,
              bleuFull: f?.bleu ?? Number.NaN,
              bleuExtracted: d.bleu,
              identicalHypotheses: same,
              sentences: d.sentences,
            });
          }
        }
        const n = Object.keys(ex.tasks).length;
        const out: EvalOutput = {
          label: "TaskMoE extracted",
          parameters: n ? Math.round(params / n) : 0,
          splits,
          equivalence,
        };
        return out;
      },
    },
    evalStage("eval-student", "Student (KD from TokenMoE)", () => student.run.dir),
  ];
  for (const k of study.prune.keep) {
    stages.push({
      name: `eval-pruned-${k}`,
      config: { eval: evalSettings, keep: k },
      async run(dir, ctx) {
        const p = (ctx.outputs.prune as PruneOutput).models.find((m) => m.keep === k);
        if (!p) throw new StudyError("MISSING_INPUT", `prune: no model keeping ${k} experts`);
        const { out } = await evalCheckpoint(
          p.dir,
          `TokenMoE pruned to ${k}`,
          study,
          dir,
          ctx.log,
          `studyPruned${k}`,
        );
        return out;
      },
    });
  }
  stages.push({
    name: "report",
    config: { version: 3, runs: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, r.run.dir])) },
    async run(dir, ctx) {
      return writeStudyReport(dir, study, ctx.outputs);
    },
  });
  return stages;
}

function readLines(file: string): string[] | undefined {
  if (!existsSync(file)) return undefined;
  return readFileSync(file, "utf8").replace(/\n$/, "").split("\n");
}

/** Runs (or continues) a study. Resolves to the report's outputs, or throws StudyInterrupted. */
export async function runStudy(
  study: StudyConfig,
  opts: StudyOptions = {},
): Promise<Record<string, unknown>> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const backend = await useBackend(study.backend);
  log(`backend: ${backend.backend} — ${backend.detail}`);
  const stages = studyStages(study, opts.source);
  const t0 = performance.now();
  const describe = (e: StageEvent) =>
    ({
      cached: "done earlier with the same config; reusing it",
      run: "running",
      resume: "continuing the unfinished attempt",
      invalidated:
        "its config (or an earlier stage's) changed: discarding its old outputs and running it again",
    })[e.action];
  const r = await runStages(study.dir, stages, {
    log,
    extra: undefined,
    ...(opts.until ? { until: opts.until } : {}),
    onStage: (e) => {
      const mins = ((performance.now() - t0) / 60000).toFixed(1);
      log(`[study ${e.index + 1}/${e.total} · ${mins} min] ${e.stage}: ${describe(e)} (key ${e.key})`);
    },
  });
  return r.outputs;
}
