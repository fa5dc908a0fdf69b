import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";

import {
  type BatchIterator,
  type BatchIteratorState,
  consoleProgress,
  createBatchIterator,
  loadTrainingData,
  mergeConfig,
  openCorpus,
  PREPARE_PRESETS,
  type PrepareConfig,
  type PresetName,
  parsePrepareConfig,
  prepareCorpus,
} from "@polymoe/data";
import {
  checkTeacher,
  type DistillBatch,
  DistillError,
  DistillSource,
  generateSequenceKdCorpus,
  initStudentFromTeacher,
  kdTrainLoss,
  loadTeacher,
  readTeacherInfo,
  type TeacherInfo,
  TopKCache,
  teacherDigest,
} from "@polymoe/distill";
import { encodeEvalBatches } from "@polymoe/eval";
import { useBackend } from "@polymoe/kernels";
import { type ModelConfig, Transformer } from "@polymoe/model";
import { OffloadError, PagedExperts } from "@polymoe/offload";
import { createWorld, ParallelError } from "@polymoe/parallel";
import {
  aggregateExperts,
  type BatchSource,
  createParallelRuntime,
  type DevResult,
  initExpertsFromDense,
  lastCheckpoint,
  type ParallelRuntime,
  Progress,
  type TrainBatch,
  TrainError,
  Trainer,
  type TrainerOptions,
  type TrainSummary,
  writeFileAtomic,
} from "@polymoe/train";
import { modelConfigFor, type RunConfig, studentModelConfigFor } from "./config.js";

import { devBleu, devLoss, loadDevPairs } from "./dev.js";
import { writeTrainingPlots } from "./plots.js";

/** A one-line description of an architecture: dense, or its MoE layers. */
function describeArchitecture(m: ModelConfig): string {
  const stacks = (["encoder", "decoder"] as const).flatMap((s) => {
    const p = m.moe?.[s];
    return p
      ? [
          `${s} ${JSON.stringify(p.numExperts)} experts (${p.router.type}, k ${(p.router as { k?: number }).k ?? "-"})`,
        ]
      : [];
  });
  return `${m.encoderLayers}+${m.decoderLayers} layers, d=${m.dModel}, ${stacks.length ? stacks.join("; ") : "dense"}`;
}

export interface RunOptions {
  fresh?: boolean;
  resetOptimizer?: boolean;
  resetDataloader?: boolean;
  /** Where the config came from (for error messages). */
  source?: string;
  log?: (line: string) => void;
}

/** Expert counts of the model's MoE layers, from its config. */
function expertCounts(model: RunConfig["model"]): number[] {
  const moe = (model as { moe?: Record<string, { numExperts?: number | number[] } | undefined> }).moe;
  return Object.values(moe ?? {}).flatMap((p) =>
    p?.numExperts === undefined ? [] : Array.isArray(p.numExperts) ? p.numExperts : [p.numExperts],
  );
}

/**
 * The batch iterator as the trainer's BatchSource, able to resume from a run
 * with another number of data-parallel ranks: it continues the saved epoch
 * after the batches all saved ranks consumed. The epoch's batches are cut for
 * a given rank count, so around that point a few examples may repeat or be
 * skipped; the log says so.
 */
function reshardable(it: BatchIterator, log: (l: string) => void): BatchSource {
  return {
    next: () => it.next() as IteratorResult<TrainBatch>,
    state: () => it.state(),
    restore: (s: never) => it.restore(s),
    reshard: (states, rank, worldSize) => {
      const s = states[0] as BatchIteratorState;
      const consumed = s.position * s.worldSize;
      it.restore({
        ...s,
        rank,
        worldSize,
        position: Math.floor(consumed / worldSize),
        step: Math.floor((s.step * s.worldSize) / worldSize),
      });
      log(
        `data: the checkpoint was written by ${s.worldSize} data-parallel ranks, this run has ${worldSize}: ` +
          `continuing epoch ${s.epoch} after its first ${consumed} batches (the epoch was planned for ` +
          `${s.worldSize} ranks, so a few examples may repeat or be skipped)`,
      );
    },
  };
}

/** Builds the corpus if needed, the model, the data stream and the trainer, and trains. */
/**
 * Why a corpus the config says is built by a preset no longer matches that
 * preset (its languages or vocabulary changed since it was prepared), or null.
 */
async function presetMismatch(
  corpusDir: string,
  want: PrepareConfig,
  preset: string,
): Promise<string | null> {
  let have: PrepareConfig;
  try {
    have = (await openCorpus(corpusDir)).manifest.config;
  } catch {
    return null; // opening it for training reports what is wrong with it
  }
  const langs = (l: PrepareConfig["languages"]) => (l === "auto" ? "auto" : l.join(","));
  if (
    langs(have.languages) === langs(want.languages) &&
    have.tokenizer.vocabSize === want.tokenizer.vocabSize
  ) {
    return null;
  }
  return (
    `was prepared with languages ${langs(have.languages)} and ${have.tokenizer.vocabSize} tokens; ` +
    `preset ${preset} is now ${langs(want.languages)} and ${want.tokenizer.vocabSize} tokens`
  );
}

export async function runTraining(config: RunConfig, opts: RunOptions = {}): Promise<TrainSummary> {
  // Ranks: MPI when started by `polymoe launch` (or mpirun), else one process.
  const world = createWorld(config.parallel);
  const rankZero = world.rank === 0;
  const log = rankZero ? (opts.log ?? ((l: string) => console.log(l))) : () => {};
  const p = config.parallel;
  if (world.size === 1 && (p.ep > 1 || p.tp > 1)) {
    throw new ParallelError(
      "INVALID_LAYOUT",
      `parallel.ep = ${p.ep} and parallel.tp = ${p.tp} need several ranks, this is one process: ` +
        `run it as \`polymoe launch -n ${p.ep * p.tp} -- train ...\` (or set both to 1)`,
    );
  }
  const backend = await useBackend(config.run.backend);
  log(`backend: ${backend.backend} — ${backend.detail}`);
  if (backend.fallbackReason) log(`(native backend unavailable: ${backend.fallbackReason})`);
  let rt: ParallelRuntime | null = null;
  if (world.size > 1) {
    rt = await createParallelRuntime(world, p, { experts: expertCounts(config.model) });
    const l = rt.groups.layout;
    log(
      `parallel: ${l.worldSize} ranks (${world.backend}) = dp ${l.dp} x tp ${l.tp}; ep ${l.ep}, edp ${l.edp}; ` +
        `ZeRO stage ${p.zeroStage}; gradient buckets ${p.bucketMb} MiB`,
    );
  } else if (p.zeroStage > 0) log(`parallel.zeroStage ${p.zeroStage} has no effect on one process`);

  // Data (rank 0 builds a missing corpus; the others wait for it).
  const corpusDir = config.data.corpus;
  if (rankZero && config.data.prepare) {
    const preset = config.data.prepare as PresetName;
    const prepare = parsePrepareConfig(
      mergeConfig(PREPARE_PRESETS[preset], { out: corpusDir }),
      "data.prepare",
    );
    const why = existsSync(path.join(corpusDir, "manifest.json"))
      ? await presetMismatch(corpusDir, prepare, preset)
      : "not found";
    if (why) {
      log(`corpus ${corpusDir} ${why}: preparing it (preset ${preset})`);
      await prepareCorpus(prepare, { progress: consoleProgress() });
    }
  }
  await world.barrier();
  // Distillation: the teacher is found and checked before anything is trained.
  const distill = config.distill;
  let teacher: TeacherInfo | undefined;
  if (distill && world.size > 1) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `distill: distillation runs in one process for now; this job has ${world.size} ranks (run polymoe train without polymoe launch)`,
    );
  }
  if (distill) {
    teacher = readTeacherInfo(distill.teacher);
    log(
      `distill: ${distill.mode}-level, teacher ${teacher.dir} (step ${teacher.step}; ${describeArchitecture(teacher.model)})`,
    );
  }
  let corpus = await openCorpus(corpusDir);
  let data = await loadTrainingData(corpus);
  if (distill && teacher) {
    checkTeacher(teacher, {
      vocabSize: data.tokenizer.vocabSize,
      languages: corpus.languages,
      tokenizerFile: path.join(corpus.dir, corpus.manifest.tokenizer.file),
      corpus: corpus.dir,
    });
    if (distill.mode === "sequence") {
      const out = distill.corpus ?? path.join(config.run.dir, "seqkd-corpus");
      const info = teacher;
      const r = await generateSequenceKdCorpus({
        teacher: () => loadTeacher(info),
        teacherInfo: { dir: info.dir, digest: teacherDigest(info.dir) },
        corpus,
        out,
        beamSize: distill.beamSize,
        lengthPenalty: distill.lengthPenalty,
        batchSize: distill.batchSize,
        maxSourceLength: config.data.loader.maxSourceLength,
        maxPairsPerLanguage: distill.maxPairsPerLanguage,
        seed: distill.seed,
        chunkSize: distill.chunkSize,
        progress: consoleProgress(),
      });
      const pairs = Object.values(r.directions).reduce((n, d) => n + d.pairs, 0);
      log(
        r.reused
          ? `distill: sequence-level corpus ${out} is complete (${pairs} teacher translations); reusing it`
          : `distill: sequence-level corpus ${out}: ${pairs} teacher translations (beam ${distill.beamSize}), ${r.decoded} decoded now in ${r.seconds.toFixed(0)} s` +
              (r.resumedChunks ? ` (${r.resumedChunks} chunks were already done)` : ""),
      );
      corpus = await openCorpus(out);
      data = await loadTrainingData(corpus);
    }
  }
  const iterator = createBatchIterator(
    data,
    config.data.loader,
    rt ? { rank: rt.dataRank, worldSize: rt.dataWorldSize } : {},
  );
  const space = iterator.taskSpace;
  const modelConfig = teacher
    ? studentModelConfigFor(config, teacher.model, space, data.tokenizer.vocabSize, opts.source)
    : modelConfigFor(config, space, data.tokenizer.vocabSize, opts.source);

  // Run directory and the resolved config.
  const runDir = config.run.dir;
  mkdirSync(runDir, { recursive: true });
  const resolved = { ...config, model: modelConfig };
  if (rankZero) {
    writeFileAtomic(path.join(runDir, "config.json"), [
      Buffer.from(`${JSON.stringify(resolved, null, 2)}\n`),
    ]);
  }

  // Model (each rank builds its share: its experts, its tensor slices). With
  // train.offload.experts "paged" the experts live in a PagedExperts store
  // under offload.dir instead of tfjs variables.
  const offload = config.train.offload;
  const paged = offload?.experts === "paged";
  if (paged && (config.train.init.expertsFromDense || config.train.init.aggregateExperts)) {
    throw new OffloadError(
      "INVALID_ARGUMENT",
      "train.offload.experts 'paged' cannot be combined with train.init.expertsFromDense or " +
        "train.init.aggregateExperts yet (they write expert variables); initialise in a run without paging, " +
        "then resume from its checkpoint with paging on",
    );
  }
  const model = new Transformer(modelConfig, {
    seed: config.train.seed,
    ...(rt ? { exchange: rt.hooks.exchange } : {}),
    ...(rt?.hooks.slicing ? { slicing: rt.hooks.slicing } : {}),
    ...(paged && offload ? { pager: PagedExperts.fromConfig(offload) } : {}),
  });
  const last = opts.fresh ? null : lastCheckpoint(runDir);
  const resuming = last !== null;
  // Every checkpoint carries the tokenizer it was trained with (so it can be
  // evaluated or extracted without the corpus), and a resume refuses a corpus
  // whose tokenizer changed since (e.g. re-prepared with other languages).
  const tokenizerFile = path.join(corpus.dir, corpus.manifest.tokenizer.file);
  const tokenizerBytes = readFileSync(tokenizerFile);
  if (last && existsSync(path.join(last, "tokenizer.json"))) {
    if (!readFileSync(path.join(last, "tokenizer.json")).equals(tokenizerBytes)) {
      throw new TrainError(
        "ARCHITECTURE_MISMATCH",
        `cannot resume ${last}: it was trained with a different tokenizer than ${tokenizerFile} (the corpus was prepared again since). ` +
          "Train from scratch here with --fresh, use another run.dir, or point data.corpus at the corpus it was trained on.",
      );
    }
  }
  if (!resuming) {
    if (distill?.initFromTeacher && teacher) {
      const r = initStudentFromTeacher(model, teacher.dir);
      log(
        `student initialised from the teacher's non-expert weights: ${r.copied.length} tensors copied, ${r.kept.length} kept as initialised (${r.kept.slice(0, 4).join(", ")}${r.kept.length > 4 ? ", ..." : ""})`,
      );
    }
    const init = config.train.init;
    if (init.expertsFromDense) {
      const r = initExpertsFromDense(
        model,
        init.expertsFromDense.checkpoint,
        init.expertsFromDense.noise,
        config.train.seed,
      );
      log(
        `experts from dense ${init.expertsFromDense.checkpoint}: ${r.copied} shared tensors copied, ${r.moeLayers} MoE layers initialised`,
      );
    }
    if (init.aggregateExperts) {
      const r = aggregateExperts(model, init.aggregateExperts.checkpoints, init.aggregateExperts.shared);
      log(
        `aggregated experts from ${init.aggregateExperts.checkpoints.length} checkpoints (${r.copied} shared tensors)`,
      );
    }
  }
  const moe = model.moeLayers();
  const held =
    rt && rt.groups.layout.ep * rt.groups.layout.tp > 1 ? " on rank 0 (experts split over ranks)" : "";
  log(
    `model: ${model.numParameters().toLocaleString("en-US")} parameters${held}, ${modelConfig.encoderLayers}+${modelConfig.decoderLayers} layers, ` +
      `d=${modelConfig.dModel}, ${moe.length === 0 ? "dense" : moe.map((m) => `${m.name}: ${m.layer.config.numExperts} experts (${m.layer.config.router.type})`).join("; ")}`,
  );
  log(
    `data: ${corpus.languages.length - 1} languages + English, ${iterator.examplesPerEpoch.toLocaleString("en-US")} examples per epoch, ` +
      `${config.data.loader.maxTokens} tokens per batch${rt && rt.dataWorldSize > 1 ? ` per data-parallel rank (${rt.dataWorldSize} ranks)` : ""}`,
  );

  // Dev set.
  const pairs = await loadDevPairs(corpus, "dev", config.dev.lossSentencesPerPair);
  const batches = encodeEvalBatches(pairs, data.tokenizer, space, {
    batchSize: config.dev.batchSize,
    maxSourceLength: config.data.loader.maxSourceLength,
    maxTargetLength: config.data.loader.maxTargetLength,
  });
  log(
    `dev: ${pairs.length} directions, ${batches.reduce((s, b) => s + b.size, 0)} sentences for the dev loss`,
  );
  // Decoding runs a data-dependent number of forward passes; with experts or
  // slices on several ranks every pass is a collective, so ranks could
  // disagree on the count. Dev BLEU then waits for a checkpoint (polymoe eval).
  const splitModel = rt !== null && rt.groups.layout.ep * rt.groups.layout.tp > 1;
  const bleuPerPair = splitModel ? 0 : config.dev.bleuSentencesPerPair;
  if (splitModel && config.dev.bleuSentencesPerPair > 0) {
    log(
      "dev BLEU is off while experts are split over ranks (ep or tp > 1): run polymoe eval on a checkpoint",
    );
  }

  // Word-level distillation: the teacher's targets ride on each batch (on the fly, or from a
  // top-k cache keyed by the iterator's position); the loss mixes KL and label CE.
  let source: DistillSource | undefined;
  let kd: ReturnType<typeof kdTrainLoss> | undefined;
  if (distill?.mode === "word" && teacher) {
    const info = teacher;
    const cache = distill.cache
      ? TopKCache.open(
          distill.cache.dir,
          {
            teacher: { dir: info.dir, digest: teacherDigest(info.dir) },
            data: `${data.fingerprint}/${JSON.stringify(config.data.loader)}`,
            vocabSize: data.tokenizer.vocabSize,
            topK: distill.cache.topK,
            temperature: distill.temperature,
            rank: iterator.rank,
            worldSize: iterator.worldSize,
          },
          { recordsPerShard: distill.cache.recordsPerShard },
        )
      : undefined;
    source = new DistillSource({
      data: iterator,
      teacher: () => {
        const t = loadTeacher(info);
        log(
          `teacher loaded: ${t.numParameters().toLocaleString("en-US")} parameters (evaluation mode, no gradients)`,
        );
        return t;
      },
      temperature: distill.temperature,
      ...(cache ? { cache } : {}),
      seed: config.train.seed,
    });
    kd = kdTrainLoss({
      alpha: distill.alpha,
      temperature: distill.temperature,
      ...(distill.cache ? { tail: distill.cache.tail } : {}),
    });
    log(
      `distill: loss = ${distill.alpha} * T^2 * KL + ${1 - distill.alpha} * label-smoothed CE, T = ${distill.temperature}; teacher ` +
        (distill.cache
          ? `top-${distill.cache.topK} log-probs cached in ${distill.cache.dir} (tail: ${distill.cache.tail}; read when present, computed and written when not)`
          : "distribution computed on the fly"),
    );
  }
  const common: Omit<TrainerOptions, "data"> = {
    model,
    config: config.train,
    runDir,
    runConfig: resolved,
    checkpointFiles: { "tokenizer.json": tokenizerBytes },
    dev: (m, rng): DevResult => {
      const loss = devLoss(m, batches, config.train.labelSmoothing, rng);
      if (bleuPerPair === 0) return loss;
      const { bleu, perPair } = devBleu(m, pairs, data.tokenizer, space, {
        perPair: bleuPerPair,
        beamSize: config.dev.beamSize,
        batchSize: config.dev.batchSize,
        maxSourceLength: config.data.loader.maxSourceLength,
      });
      const extra: Record<string, number> = {};
      for (const [pair, b] of Object.entries(perPair)) extra[`bleu:${pair}`] = b;
      return { ...loss, bleu, ...extra };
    },
    progress: new Progress(),
    ...(opts.fresh ? { fresh: true } : {}),
    ...(opts.resetOptimizer ? { resetOptimizer: true } : {}),
    ...(opts.resetDataloader ? { resetDataloader: true } : {}),
    ...(rt ? { parallel: rt } : {}),
  };
  const trainer =
    source && kd
      ? new Trainer<DistillBatch>({ ...common, data: source, loss: kd.loss })
      : new Trainer({ ...common, data: reshardable(iterator, log) });
  try {
    const summary = await trainer.run();
    if (source && kd) {
      source.dispose(); // flushes the cache
      const s = source.stats;
      const m = kd.meter.read();
      log(
        `distill: mean KL ${m.kl.toFixed(4)}, label CE ${m.ce.toFixed(4)} per token over ${m.batches} micro-batches; teacher targets: ` +
          `${s.teacherBatches} batches computed (${(s.teacherMs / Math.max(1, s.teacherBatches)).toFixed(0)} ms each)` +
          (distill?.mode === "word" && distill.cache
            ? `, ${s.cacheHits} read from ${distill.cache.dir} (${(s.cacheMs / Math.max(1, s.cacheHits)).toFixed(1)} ms each)`
            : ""),
      );
    }
    if (rankZero) {
      const plots = writeTrainingPlots(runDir);
      if (plots.length) log(`plots: ${plots.join(", ")}`);
    }
    return summary;
  } finally {
    source?.dispose();
    trainer.dispose();
    model.dispose();
    if (model.pager instanceof PagedExperts) model.pager.dispose();
  }
}
