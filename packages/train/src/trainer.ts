import { appendFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import type { ForwardOutput, ModelBatch, Transformer } from "@polymoe/model";
import { OffloadedAdamW, PagedExperts } from "@polymoe/offload";
import { Rng, type RoutingMetrics } from "@polymoe/routers";
import {
  add,
  clone,
  keep,
  mul,
  type Scalar,
  type Tensor,
  tidy,
  type Variable,
  variableGrads,
} from "@tensorflow/tfjs-core";

import {
  CHECKPOINT_FORMAT,
  type CheckpointState,
  lastCheckpoint,
  loadCheckpoint,
  readRankStates,
  saveCheckpoint,
  saveParallelCheckpoint,
} from "./checkpoint.js";
import type { TrainConfig } from "./config.js";
import { TrainError } from "./errors.js";
import { labelSmoothedCrossEntropy, type TokenLoss } from "./loss.js";
import { AdamW, decayOf, globalNorm, type TrainOptimizer } from "./optimizer.js";
import { type ParallelRuntime, ShardedOptimizer } from "./parallel.js";
import { Progress } from "./progress.js";
import { learningRate } from "./schedule.js";

/** Where ranks other than 0 send progress output. */
const SILENT = { write: () => true } as unknown as NodeJS.WriteStream;

/** What the trainer needs of a batch (a structural subset of @polymoe/data's Batch). */
export interface TrainBatch {
  epoch?: number;
  size: number;
  srcLen: number;
  tgtLen: number;
  /** <int32>[B, S] */
  srcIds: Int32Array;
  /** [B, S] 1 = token */
  srcMask: ArrayLike<number>;
  /** <int32>[B, T] decoder input */
  tgtInIds: Int32Array;
  /** <int32>[B, T] decoder target */
  tgtOutIds: Int32Array;
  /** [B, T] 1 = real target token */
  tgtMask: ArrayLike<number>;
  /** <int32>[B] per-sentence task ids */
  targetLangIds: Int32Array;
  pairIds: Int32Array;
  taskTypeIds: Int32Array;
  srcTokens: number;
  tgtTokens: number;
}

/** An endless, resumable stream of training batches (e.g. @polymoe/data's BatchIterator). */
export interface BatchSource<B extends TrainBatch = TrainBatch> {
  next(): IteratorResult<B>;
  state(): unknown;
  restore(state: never): void;
  /**
   * Resumes from the states of a run with another number of data-parallel
   * ranks (`states[d]` of its data rank d) as data rank `rank` of
   * `worldSize`. Without it such a resume needs --reset-dataloader.
   */
  reshard?(states: readonly unknown[], rank: number, worldSize: number): void;
}

/** What a custom training loss sees of one micro-batch. */
export interface LossInput<B extends TrainBatch = TrainBatch> {
  /** The model's teacher-forced output (logits <float32>[B*T, V]). */
  output: ForwardOutput;
  /** The micro-batch as the batch source returned it. */
  batch: B;
  /** train.labelSmoothing. */
  labelSmoothing: number;
  /** Optimizer updates done so far. */
  step: number;
}

/**
 * Replaces the token loss of a training step (label-smoothed cross-entropy by
 * default; e.g. a distillation loss). Runs inside the gradient scope: return
 * tensors derived from `output.logits`. The router losses are added by the
 * trainer. `nll` (against the batch's targets) is what metrics report.
 */
export type TrainLoss<B extends TrainBatch = TrainBatch> = (input: LossInput<B>) => TokenLoss;

/** Dev-set results; loss and nll per target token. */
export interface DevResult {
  loss: number;
  nll: number;
  tokens: number;
  bleu?: number;
  [extra: string]: number | undefined;
}

export type DevEvaluator = (model: Transformer, rng: Rng) => DevResult;

/** The model-ready view of a batch. */
export function toModelBatch(b: TrainBatch): ModelBatch {
  return {
    batch: b.size,
    srcLen: b.srcLen,
    tgtLen: b.tgtLen,
    src: b.srcIds,
    tgtIn: b.tgtInIds,
    srcMask: Uint8Array.from(b.srcMask, (m) => (m ? 1 : 0)),
    tgtMask: Uint8Array.from(b.tgtMask, (m) => (m ? 1 : 0)),
    taskIds: { "target-language": b.targetLangIds, "language-pair": b.pairIds, "task-type": b.taskTypeIds },
  };
}

/** Dev loss over fixed batches, in eval mode (no dropout, eval capacity). */
export function evaluateLoss(
  model: Transformer,
  batches: Iterable<TrainBatch>,
  labelSmoothing: number,
  rng: Rng,
): DevResult {
  let loss = 0;
  let nll = 0;
  let tokens = 0;
  for (const b of batches) {
    tidy(() => {
      const out = model.forward(toModelBatch(b), { training: false, rng });
      const l = labelSmoothedCrossEntropy(out.logits, b.tgtOutIds, b.tgtMask, labelSmoothing);
      loss += (l.loss.dataSync()[0] as number) * l.tokens;
      nll += (l.nll.dataSync()[0] as number) * l.tokens;
      tokens += l.tokens;
    });
  }
  return { loss: loss / Math.max(1, tokens), nll: nll / Math.max(1, tokens), tokens };
}

/**
 * The communication part of a metrics line (rank 0's view): milliseconds per
 * step in all-to-all, all-reduce (gradients, tensor-parallel sums, the step's
 * scalars) and all-gather (ZeRO), and each one's share of the step time.
 */
function commRecord(
  c: { stepMs: number; allToAll: number; allReduce: number; allGather: number },
  steps: number,
): Record<string, unknown> {
  const share = (x: number) => (c.stepMs > 0 ? x / c.stepMs : 0);
  return {
    stepMs: c.stepMs / steps,
    allToAllMs: c.allToAll / steps,
    allReduceMs: c.allReduce / steps,
    allGatherMs: c.allGather / steps,
    allToAllShare: share(c.allToAll),
    allReduceShare: share(c.allReduce),
    allGatherShare: share(c.allGather),
  };
}

/** Per MoE layer statistics accumulated over a logging interval. */
interface MoeAccumulator {
  steps: number;
  dropped: number;
  entropy: number;
  unused: number;
  tokensPerExpert: Float64Array;
  usagePerTask?: Float64Array;
  numTasks: number;
}

export interface StepResult {
  step: number;
  loss: number;
  nll: number;
  aux: number;
  z: number;
  gradNorm: number;
  lr: number;
  tokens: number;
  skipped: boolean;
  moe: { layer: string; metrics: RoutingMetrics }[];
  /** Wall time of the step's phases (milliseconds, summed over micro-batches). */
  timings: StepTimings;
  /** Host memory and disk traffic of the step. */
  memory: StepMemory;
}

/** Budget honesty: the process's memory and the offload store's disk traffic in one step. */
export interface StepMemory {
  /** Peak resident set size of the process so far, and now (bytes). */
  peakRssBytes: number;
  rssBytes: number;
  /** Bytes the offload store read from / wrote to disk in this step (0 without offload). */
  diskBytesRead: number;
  diskBytesWritten: number;
  /** Host bytes the offload store holds after the step (0 without offload). */
  offloadHostBytes: number;
}

/** The memory record of a step: RSS always, the stores' traffic when the optimizer or the experts are offloaded. */
function stepMemory(optimizer: TrainOptimizer, pager: PagedExperts | null): StepMemory {
  const off = optimizer instanceof OffloadedAdamW ? optimizer.lastStep() : null;
  const paged = pager?.lastStep() ?? null;
  return {
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    rssBytes: process.memoryUsage.rss(),
    diskBytesRead: (off?.bytesRead ?? 0) + (paged?.bytesRead ?? 0),
    diskBytesWritten: (off?.bytesWritten ?? 0) + (paged?.bytesWritten ?? 0),
    offloadHostBytes: (off?.hostBytes ?? 0) + (paged?.hostBytes ?? 0),
  };
}

/**
 * Where a step's time went. `forward` includes the loss; `backward` is the
 * gradient computation that follows it; `sections` splits the forward by
 * model part (see ForwardContext.timer). Exact on synchronous backends.
 * Parallel runs add `comm`: the time spent communicating, which the phases
 * above include (all-to-all and tensor-parallel reductions inside forward
 * and backward; gradient reduction, norm and ZeRO gathers inside optimizer).
 */
export interface StepTimings {
  data: number;
  forward: number;
  backward: number;
  optimizer: number;
  total: number;
  sections: Partial<Record<"embed" | "attention" | "ffn" | "moe" | "output", number>>;
  comm?: CommTimings;
}

/** Milliseconds of one step spent in each kind of collective (waiting for peers included). */
export interface CommTimings {
  /** MoE token exchange (all-to-all), forward and backward. */
  allToAll: number;
  /** Tensor-parallel all-reduces of sliced expert FFNs, forward and backward. */
  tensorParallel: number;
  /** Gradient all-reduce over dp/edp (ZeRO-2: reduce-scatter). */
  gradients: number;
  /** ZeRO all-gather of updated parameter shards. */
  parameters: number;
  /** The step's scalars (losses, norm, flags): one small all-reduce. */
  scalars: number;
  total: number;
}

export interface TrainerOptions<B extends TrainBatch = TrainBatch> {
  model: Transformer;
  config: TrainConfig;
  data: BatchSource<B>;
  /** The token loss (default: label-smoothed cross-entropy with train.labelSmoothing). */
  loss?: TrainLoss<B>;
  runDir: string;
  /** The full resolved run config, stored in every checkpoint. */
  runConfig: unknown;
  /** Files written into every checkpoint (e.g. tokenizer.json: a checkpoint then stands alone). */
  checkpointFiles?: Readonly<Record<string, Uint8Array>>;
  dev?: DevEvaluator;
  /** Start fresh even if the run directory has a checkpoint. */
  fresh?: boolean;
  resetOptimizer?: boolean;
  resetDataloader?: boolean;
  progress?: Progress;
  /** Handle SIGINT/SIGTERM: save, then stop (default true). */
  handleSignals?: boolean;
  /**
   * Train across ranks (createParallelRuntime): the model must be built with
   * parallel.hooks; `data` must be this rank's shard (parallel.dataRank of
   * parallel.dataWorldSize). Only rank 0 logs and writes shared files.
   */
  parallel?: ParallelRuntime;
}

export interface TrainSummary {
  steps: number;
  stoppedBy: "max-steps" | "signal";
  skippedSteps: number;
  lastCheckpoint: string;
  bestDevLoss?: number;
  resumedFrom?: string;
  lastDev?: DevResult;
  seconds: number;
  tokens: number;
}

/**
 * The training loop: teacher-forced label-smoothed cross-entropy plus router
 * losses, AdamW with warmup, global-norm clipping, gradient accumulation, a
 * guard against non-finite steps, periodic dev evaluation and atomic
 * checkpoints, resumed exactly from checkpoint_last by default.
 */
export class Trainer<B extends TrainBatch = TrainBatch> {
  readonly model: Transformer;
  readonly config: TrainConfig;
  /** The optimizer of a one-process run: AdamW, or OffloadedAdamW when config.offload is set. */
  readonly optimizer: TrainOptimizer;
  /** The optimizer of a parallel run (flat buffers, ZeRO), else null. */
  readonly sharded: ShardedOptimizer | null;
  readonly parallel: ParallelRuntime | null;
  rng: Rng;
  step = 0;
  epoch = 0;
  bestDevLoss = Number.POSITIVE_INFINITY;
  skippedSteps = 0;
  private consecutiveBad = 0;
  /** Stop after this step (in a parallel run: agreed by all ranks through the step's scalars). */
  private stopRequested = false;
  /** A signal arrived on this rank (a parallel run stops once every rank knows). */
  private signalled = false;
  private readonly vars: Map<string, Variable>;
  /** The model's paged experts (train.offload.experts "paged"), else null. */
  readonly pager: PagedExperts | null;
  private readonly keyOfName = new Map<string, string>();
  private readonly metricsFile: string;
  readonly progress: Progress;

  constructor(private readonly opts: TrainerOptions<B>) {
    this.model = opts.model;
    this.config = opts.config;
    this.parallel = opts.parallel ?? null;
    if (this.parallel && opts.config.offload) {
      throw new TrainError(
        "INVALID_ARGUMENT",
        "train.offload is not supported in parallel runs yet (their ZeRO optimizer keeps its own flat state); " +
          "remove train.offload or run in one process",
      );
    }
    const paged = opts.config.offload?.experts === "paged";
    if (
      paged !== (opts.model.pager !== null) ||
      (opts.model.pager && !(opts.model.pager instanceof PagedExperts))
    ) {
      throw new TrainError(
        "INVALID_ARGUMENT",
        paged
          ? "train.offload.experts is 'paged' but the model was built without a pager; build it with " +
              "new Transformer(config, { seed, pager: new PagedExperts({ dir, cacheBytes }) })"
          : opts.model.pager instanceof PagedExperts
            ? "the model's experts are paged (built with a PagedExperts pager) but train.offload.experts is " +
              `'${opts.config.offload?.experts ?? "unset"}'; set train.offload with experts: "paged"`
            : "the model's pager is not a @polymoe/offload PagedExperts; the trainer can only update PagedExperts",
      );
    }
    this.pager = opts.model.pager instanceof PagedExperts ? opts.model.pager : null;
    this.rng = new Rng(this.rngSeed());
    this.vars = new Map([...opts.model.variables()].filter(([, v]) => v.trainable));
    const oc = opts.config.optimizer;
    this.optimizer = opts.config.offload
      ? new OffloadedAdamW({
          optimizer: oc,
          offload: opts.config.offload,
          params: this.vars,
          decayOf: (name) => decayOf(oc, name),
          experts: opts.model.expertLayout(),
        })
      : new AdamW(oc);
    for (const [k, v] of this.vars) this.keyOfName.set(v.name, k);
    this.sharded = this.parallel
      ? new ShardedOptimizer(opts.model, this.vars, this.parallel, opts.config.optimizer)
      : null;
    mkdirSync(opts.runDir, { recursive: true });
    this.metricsFile = path.join(opts.runDir, "metrics.jsonl");
    this.progress = this.isRankZero() ? (opts.progress ?? new Progress()) : new Progress(SILENT, false);
  }

  /** Rank 0 of a parallel run, or a one-process run: the one that logs and writes shared files. */
  isRankZero(): boolean {
    return !this.parallel || this.parallel.groups.world.rank === 0;
  }

  /** Routing and dropout RNG seed: data-parallel rank d draws its own stream (tensor-parallel peers share it). */
  private rngSeed(): number {
    return this.config.seed + 1_000_003 * (this.parallel?.coords.dpIndex ?? 0);
  }

  /** Loads checkpoint_last if there is one (and not `fresh`); returns its path. */
  resume(): string | undefined {
    if (this.opts.fresh) return undefined;
    const dir = lastCheckpoint(this.opts.runDir);
    if (!dir) return undefined;
    const state = loadCheckpoint(dir, this.model, this.sharded ?? this.optimizer, {
      resetOptimizer: this.opts.resetOptimizer ?? false,
    });
    if (this.sharded) {
      this.sharded.syncFromModel();
      if (this.opts.resetOptimizer || !state.optimizer) this.sharded.resetMoments();
    }
    this.step = state.step;
    this.epoch = state.epoch;
    if (state.bestDevLoss !== undefined) this.bestDevLoss = state.bestDevLoss;
    // RNG and data position: one process keeps them in state.json, a parallel
    // run in rank<r>.json per rank (data rank d = the rank with dpIndex d, tp index 0).
    const ranks = readRankStates(dir);
    const savedDp = state.parallel?.dp ?? 1;
    const dpIndex = this.parallel?.dataRank ?? 0;
    const dp = this.parallel?.dataWorldSize ?? 1;
    const dataRanks: { rng: number[]; data: unknown }[] = state.parallel
      ? [...Array(savedDp).keys()].map((d) => {
          const r = ranks.find((x) => x.dpIndex === d && x.tpIndex === 0);
          if (!r)
            throw new TrainError("CHECKPOINT_CORRUPT", `${dir}: rank state of data rank ${d} is missing`);
          return r;
        })
      : [{ rng: state.rng, data: state.data }];
    this.rng =
      dpIndex < dataRanks.length
        ? new Rng((dataRanks[dpIndex] as { rng: number[] }).rng)
        : new Rng(this.rngSeed());
    if (!this.opts.resetDataloader && dataRanks.some((r) => r.data !== undefined && r.data !== null)) {
      if (savedDp === dp) this.opts.data.restore((dataRanks[dpIndex] as { data: unknown }).data as never);
      else if (this.opts.data.reshard)
        this.opts.data.reshard(
          dataRanks.map((r) => r.data),
          dpIndex,
          dp,
        );
      else {
        throw new TrainError(
          "INVALID_ARGUMENT",
          `${dir} was saved with ${savedDp} data-parallel ranks, this run has ${dp}, and its batch source ` +
            "cannot move its position between them; resume with --reset-dataloader (the data stream starts again)",
        );
      }
    }
    return dir;
  }

  private log(record: Record<string, unknown>): void {
    if (!this.isRankZero()) return;
    appendFileSync(this.metricsFile, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }

  /** One optimizer update over `accumulate` micro-batches (in a parallel run, on every rank together). */
  async trainStep(): Promise<StepResult> {
    const c = this.config;
    // The pager's anchor leads the tape to the paged experts' gradient sinks.
    const names = [...this.vars.values(), ...(this.pager ? [this.pager.anchor] : [])];
    let sumLoss = 0;
    let sumNll = 0;
    let sumAux = 0;
    let sumZ = 0;
    let tokens = 0;
    let finite = true;
    const moe: { layer: string; metrics: RoutingMetrics }[] = [];
    const grads = new Map<string, Tensor>();
    const stepStart = performance.now();
    const timings: StepTimings = { data: 0, forward: 0, backward: 0, optimizer: 0, total: 0, sections: {} };
    const timer = (section: keyof StepTimings["sections"], ms: number) => {
      timings.sections[section] = (timings.sections[section] ?? 0) + ms;
    };
    for (let micro = 0; micro < c.accumulate; micro++) {
      const dataStart = performance.now();
      const next = this.opts.data.next();
      if (next.done)
        throw new TrainError("INVALID_ARGUMENT", "the batch source ended; training batches must be endless");
      const batch = next.value;
      if (batch.epoch !== undefined) this.epoch = batch.epoch;
      const mb = toModelBatch(batch);
      const gradStart = performance.now();
      timings.data += gradStart - dataStart;
      let forwardMs = 0;
      let nll = 0;
      let microTokens = 0;
      let aux = 0;
      let z = 0;
      let reports: ForwardOutput["moe"] = [];
      // variableGrads disposes everything but the loss: read what is needed inside.
      const { value, grads: g } = variableGrads(() => {
        const out = this.model.forward(mb, { training: true, rng: this.rng, step: this.step, timer });
        const l = this.opts.loss
          ? this.opts.loss({ output: out, batch, labelSmoothing: c.labelSmoothing, step: this.step })
          : labelSmoothedCrossEntropy(out.logits, batch.tgtOutIds, batch.tgtMask, c.labelSmoothing);
        nll = l.nll.dataSync()[0] as number;
        aux = out.auxLoss.dataSync()[0] as number;
        z = out.zLoss.dataSync()[0] as number;
        microTokens = l.tokens;
        reports = out.moe;
        const total = add(
          l.loss,
          add(mul(out.auxLoss, c.auxLossCoef), mul(out.zLoss, c.zLossCoef)),
        ) as Scalar;
        forwardMs = performance.now() - gradStart;
        return total;
      }, names);
      const lossValue = value.dataSync()[0] as number;
      value.dispose();
      sumAux += aux;
      sumZ += z;
      sumLoss += lossValue;
      sumNll += nll;
      tokens += microTokens;
      finite &&= Number.isFinite(lossValue);
      moe.push(...reports);
      tidy(() => {
        for (const [name, t] of Object.entries(g)) {
          const key = this.keyOfName.get(name);
          if (key === undefined) continue; // the pager's anchor (zero gradient)
          const prev = grads.get(key);
          grads.set(key, keep(prev ? add(prev, t) : clone(t)));
          prev?.dispose();
        }
      });
      for (const t of Object.values(g)) t.dispose();
      timings.forward += forwardMs;
      timings.backward += performance.now() - gradStart - forwardMs;
    }
    const optimizerStart = performance.now();
    if (this.sharded && this.parallel) {
      return this.finishParallelStep({
        grads,
        sums: { loss: sumLoss, nll: sumNll, aux: sumAux, z: sumZ, tokens },
        finite,
        moe,
        timings,
        stepStart,
        optimizerStart,
      });
    }
    // Accumulated gradients are summed; the average and the clipping factor are
    // applied inside the optimizer's update (one pass instead of two more).
    const denseNorm = globalNorm(grads.values());
    const gradNorm =
      (this.pager ? Math.sqrt(denseNorm * denseNorm + this.pager.gradSquares()) : denseNorm) / c.accumulate;
    const lr = learningRate(c.optimizer.schedule, c.optimizer.lr, this.step + 1, c.maxSteps);
    const loss = sumLoss / c.accumulate;
    const skipped = !(finite && Number.isFinite(gradNorm));
    if (skipped) {
      this.skippedSteps++;
      this.consecutiveBad++;
    } else {
      this.consecutiveBad = 0;
      const clip = c.optimizer.clipNorm;
      const clipFactor = clip > 0 && gradNorm > clip ? clip / (gradNorm + 1e-6) : 1;
      this.optimizer.apply(this.vars, grads, lr, clipFactor / c.accumulate);
      if (this.pager) {
        const oc = c.optimizer;
        this.pager.apply(oc, lr, clipFactor / c.accumulate, (name) => decayOf(oc, name));
        if (this.optimizer instanceof OffloadedAdamW && c.offload?.enforceBudget) this.optimizer.checkRss();
      }
      this.step++;
    }
    this.pager?.release();
    for (const t of grads.values()) t.dispose();
    const end = performance.now();
    timings.optimizer = end - optimizerStart;
    timings.total = end - stepStart;
    this.checkBadSteps(loss, gradNorm);
    return {
      step: this.step,
      loss,
      nll: sumNll / c.accumulate,
      aux: sumAux / c.accumulate,
      z: sumZ / c.accumulate,
      gradNorm,
      lr,
      tokens,
      skipped,
      moe,
      timings,
      memory: stepMemory(this.optimizer, this.pager),
    };
  }

  private checkBadSteps(loss: number, gradNorm: number): void {
    const c = this.config;
    if (this.consecutiveBad >= c.maxBadSteps) {
      throw new TrainError(
        "NON_FINITE",
        `stopping: ${this.consecutiveBad} consecutive steps had a non-finite loss or gradient (last: loss ${loss}, ` +
          `gradient norm ${gradNorm}, after update ${this.step}). Lower train.optimizer.lr (now ${c.optimizer.lr}), ` +
          `keep train.optimizer.clipNorm on (now ${c.optimizer.clipNorm}), or check the data. ` +
          `The last good checkpoint is ${lastCheckpoint(this.opts.runDir) ?? "not written yet"}.`,
      );
    }
  }

  /**
   * The rest of a parallel step: reduce gradients (dense over dp, experts
   * over edp), one all-reduce of the step's scalars (norm shares, losses,
   * tokens, flags) so every rank takes the same decisions, the update of this
   * rank's shards, ZeRO's gather, and the model's variables rewritten.
   */
  private async finishParallelStep(s: {
    grads: Map<string, Tensor>;
    sums: { loss: number; nll: number; aux: number; z: number; tokens: number };
    finite: boolean;
    moe: StepResult["moe"];
    timings: StepTimings;
    stepStart: number;
    optimizerStart: number;
  }): Promise<StepResult> {
    const c = this.config;
    const rt = this.parallel as ParallelRuntime;
    const opt = this.sharded as ShardedOptimizer;
    const clock = rt.hooks.clock.stats();
    rt.hooks.clock.reset();
    opt.loadGradients(s.grads);
    for (const t of s.grads.values()) t.dispose();
    const gradientsMs = await opt.reduceGradients();
    const [denseSq, expertSq] = opt.squares();
    // Losses and tokens: once per data rank (tensor-parallel peers computed the same).
    const own = rt.coords.tpIndex === 0 ? 1 : 0;
    const scalars = Float64Array.of(
      denseSq,
      expertSq,
      own * s.sums.loss,
      own * s.sums.nll,
      own * s.sums.aux,
      own * s.sums.z,
      own * s.sums.tokens,
      s.finite ? 0 : 1,
      this.signalled ? 1 : 0,
    );
    const t0 = performance.now();
    await rt.groups.world.allReduce(scalars);
    const scalarsMs = performance.now() - t0;
    const [dSq, eSq, lossSum, nllSum, auxSum, zSum, tokens, bad, stop] = scalars as unknown as number[];
    const dp = rt.dataWorldSize;
    const per = dp * c.accumulate;
    const gradNorm = Math.sqrt((dSq as number) + (eSq as number)) / c.accumulate;
    const lr = learningRate(c.optimizer.schedule, c.optimizer.lr, this.step + 1, c.maxSteps);
    const loss = (lossSum as number) / per;
    if ((stop as number) > 0) this.stopRequested = true;
    const skipped = (bad as number) > 0 || !Number.isFinite(gradNorm);
    let parametersMs = 0;
    if (skipped) {
      this.skippedSteps++;
      this.consecutiveBad++;
    } else {
      this.consecutiveBad = 0;
      const clip = c.optimizer.clipNorm;
      const clipFactor = clip > 0 && gradNorm > clip ? clip / (gradNorm + 1e-6) : 1;
      opt.update(lr, clipFactor / c.accumulate);
      parametersMs = await opt.gatherParameters();
      opt.writeToModel();
      this.step++;
    }
    const end = performance.now();
    const t = s.timings;
    t.optimizer = end - s.optimizerStart;
    t.total = end - s.stepStart;
    const comm: CommTimings = {
      allToAll: clock.allToAll.ms,
      tensorParallel: clock.tensorParallel.ms,
      gradients: gradientsMs,
      parameters: parametersMs,
      scalars: scalarsMs,
      total: 0,
    };
    comm.total = comm.allToAll + comm.tensorParallel + comm.gradients + comm.parameters + comm.scalars;
    t.comm = comm;
    this.checkBadSteps(loss, gradNorm);
    return {
      step: this.step,
      loss,
      nll: (nllSum as number) / per,
      aux: (auxSum as number) / per,
      z: (zSum as number) / per,
      gradNorm,
      lr,
      tokens: tokens as number,
      skipped,
      moe: s.moe,
      timings: t,
      memory: stepMemory(this.optimizer, this.pager),
    };
  }

  /** Writes a checkpoint of the current state (in a parallel run: every rank its shard); returns its directory. */
  async save(best = false, dev?: DevResult): Promise<string> {
    const state: CheckpointState = {
      format: CHECKPOINT_FORMAT,
      version: 1,
      step: this.step,
      epoch: this.epoch,
      config: this.opts.runConfig,
      model: this.model.config,
      optimizer: { type: this.config.optimizer.type, step: this.optimizer.step },
      data: this.opts.data.state(),
      rng: this.rng.state(),
      time: new Date().toISOString(),
      ...(dev ? { devLoss: dev.loss } : {}),
      ...(Number.isFinite(this.bestDevLoss) ? { bestDevLoss: this.bestDevLoss } : {}),
    };
    const saveOpts = {
      best,
      keepLast: this.config.keepLast,
      ...(this.opts.checkpointFiles ? { files: this.opts.checkpointFiles } : {}),
    };
    if (this.parallel && this.sharded) {
      state.optimizer = { type: this.config.optimizer.type, step: this.sharded.step };
      return saveParallelCheckpoint(
        this.opts.runDir,
        this.model,
        state,
        {
          runtime: this.parallel,
          optimizer: this.sharded,
          rng: this.rng.state(),
          data: this.opts.data.state(),
        },
        saveOpts,
      );
    }
    return saveCheckpoint(this.opts.runDir, this.model, this.optimizer, state, saveOpts);
  }

  /**
   * Runs the dev evaluator. In a parallel run the ranks that hold rank 0's
   * model replica evaluate together (one rank when ep = tp = 1; the first
   * expert-data-parallel replica otherwise, as its forward passes exchange
   * tokens), rank 0 logs, and the dev loss is broadcast so every rank takes
   * the same best/save decision.
   */
  private async evaluate(): Promise<DevResult | undefined> {
    if (!this.opts.dev) return undefined;
    const rt = this.parallel;
    const sharedModel = rt ? rt.groups.layout.ep * rt.groups.layout.tp > 1 : false;
    const runs = !rt || (sharedModel ? rt.coords.edpIndex === 0 : rt.groups.world.rank === 0);
    let dev: DevResult = { loss: Number.NaN, nll: Number.NaN, tokens: 0 };
    if (runs) dev = this.opts.dev(this.model, new Rng(this.config.seed + 7919));
    this.pager?.release(); // the evaluation's fetched experts
    if (rt) {
      const b = Float64Array.of(dev.loss);
      await rt.groups.world.broadcast(b, { root: 0 });
      if (!this.isRankZero()) dev = { loss: b[0] as number, nll: Number.NaN, tokens: 0 };
    }
    const best = dev.loss < this.bestDevLoss;
    if (best) this.bestDevLoss = dev.loss;
    this.log({ kind: "dev", step: this.step, ...dev, best });
    this.progress.line(
      `dev @ step ${this.step}: loss ${dev.loss.toFixed(3)}, nll ${dev.nll.toFixed(3)}` +
        (dev.bleu !== undefined ? `, BLEU ${dev.bleu.toFixed(2)}` : "") +
        (best ? " (best)" : ""),
    );
    return dev;
  }

  private accumulate(acc: Map<string, MoeAccumulator>, moe: StepResult["moe"]): void {
    for (const { layer, metrics: m } of moe) {
      let a = acc.get(layer);
      const E = m.tokensPerExpert.length;
      if (!a) {
        a = {
          steps: 0,
          dropped: 0,
          entropy: 0,
          unused: 0,
          tokensPerExpert: new Float64Array(E),
          numTasks: 0,
        };
        acc.set(layer, a);
      }
      a.steps++;
      a.dropped += m.droppedFraction;
      a.entropy += m.gateEntropy;
      a.unused += m.unusedExperts;
      m.tokensPerExpert.forEach((n, e) => {
        (a as MoeAccumulator).tokensPerExpert[e]! += n;
      });
      if (m.usagePerTask) {
        const N = m.usagePerTask.length / E;
        if (!a.usagePerTask || a.numTasks < N) {
          const grown = new Float64Array(N * E);
          if (a.usagePerTask) grown.set(a.usagePerTask);
          a.usagePerTask = grown;
          a.numTasks = N;
        }
        m.usagePerTask.forEach((n, i) => {
          (a as MoeAccumulator).usagePerTask![i]! += n;
        });
      }
    }
  }

  /** Trains until maxSteps (or a signal); saves and returns a summary. */
  async run(): Promise<TrainSummary> {
    const c = this.config;
    const resumedFrom = this.resume();
    if (resumedFrom) this.progress.line(`resumed from ${resumedFrom} at step ${this.step}`);
    // A second signal to this process aborts. Only this process's own signals
    // count: in a parallel run a stop agreed because a peer was signalled first
    // must not turn this rank's own (later) copy of the same Ctrl-C into an abort.
    let received = 0;
    const onSignal = (sig: string) => {
      if (++received > 1) process.exit(130);
      if (this.parallel) this.signalled = true;
      else this.stopRequested = true;
      this.progress.line(
        `${sig}: finishing the current step, saving a checkpoint, then stopping (again to abort)`,
      );
    };
    const handlers: [NodeJS.Signals, () => void][] = [
      ["SIGINT", () => onSignal("SIGINT")],
      ["SIGTERM", () => onSignal("SIGTERM")],
    ];
    if (this.opts.handleSignals ?? true) for (const [s, h] of handlers) process.on(s, h);
    const start = performance.now();
    const startStep = this.step;
    let tokens = 0;
    let trainMs = 0;
    const emptyComm = () => ({ stepMs: 0, allToAll: 0, allReduce: 0, allGather: 0 });
    let disk = { read: 0, written: 0 };
    let window = {
      loss: 0,
      nll: 0,
      aux: 0,
      z: 0,
      gnorm: 0,
      tokens: 0,
      steps: 0,
      skipped: 0,
      time: { data: 0, forward: 0, backward: 0, optimizer: 0, total: 0 },
      comm: emptyComm(),
    };
    let moeAcc = new Map<string, MoeAccumulator>();
    let lastDev: DevResult | undefined;
    let lastSaved = "";
    try {
      while (this.step < c.maxSteps && !this.stopRequested) {
        const r = await this.trainStep();
        tokens += r.tokens;
        trainMs += r.timings.total;
        window.loss += r.loss;
        window.nll += r.nll;
        window.aux += r.aux;
        window.z += r.z;
        window.gnorm += r.gradNorm;
        window.tokens += r.tokens;
        window.steps++;
        for (const k of ["data", "forward", "backward", "optimizer", "total"] as const)
          window.time[k] += r.timings[k];
        if (r.skipped) window.skipped++;
        const cm = r.timings.comm;
        if (cm) {
          window.comm.stepMs += r.timings.total;
          window.comm.allToAll += cm.allToAll;
          window.comm.allReduce += cm.gradients + cm.tensorParallel + cm.scalars;
          window.comm.allGather += cm.parameters;
        }
        disk.read += r.memory.diskBytesRead;
        disk.written += r.memory.diskBytesWritten;
        this.accumulate(moeAcc, r.moe);
        const secs = (performance.now() - start) / 1000;
        const dropped =
          r.moe.length > 0
            ? (100 * r.moe.reduce((s, m) => s + m.metrics.droppedFraction, 0)) / r.moe.length
            : 0;
        this.progress.update({
          step: this.step,
          total: c.maxSteps,
          loss: r.loss,
          tokensPerSecond: tokens / Math.max(1e-9, trainMs / 1000),
          droppedPercent: dropped,
          lr: r.lr,
          seconds: secs,
          stepsDone: this.step - startStep,
        });
        if (!r.skipped && (this.step % c.logEvery === 0 || this.step === c.maxSteps)) {
          const n = window.steps;
          this.log({
            kind: "train",
            step: this.step,
            epoch: this.epoch,
            loss: window.loss / n,
            nll: window.nll / n,
            ppl: Math.exp(window.nll / n),
            aux: window.aux / n,
            z: window.z / n,
            gradNorm: window.gnorm / n,
            lr: r.lr,
            tokens: window.tokens,
            tokensPerSecond: window.tokens / Math.max(1e-9, window.time.total / 1000),
            // Milliseconds per step by phase (training only; evaluation and saving excluded).
            stepMs: Object.fromEntries(Object.entries(window.time).map(([k, v]) => [k, +(v / n).toFixed(1)])),
            skipped: window.skipped,
            skippedTotal: this.skippedSteps,
            memory: {
              peakRssGB: +(r.memory.peakRssBytes / 2 ** 30).toFixed(3),
              rssGB: +(r.memory.rssBytes / 2 ** 30).toFixed(3),
              diskReadMBPerStep: +(disk.read / n / 2 ** 20).toFixed(2),
              diskWrittenMBPerStep: +(disk.written / n / 2 ** 20).toFixed(2),
              offloadHostGB: +(r.memory.offloadHostBytes / 2 ** 30).toFixed(3),
            },
            moe: [...moeAcc].map(([layer, a]) => ({
              layer,
              droppedFraction: a.dropped / a.steps,
              gateEntropy: a.entropy / a.steps,
              unusedExperts: a.unused / a.steps,
              tokensPerExpert: Array.from(a.tokensPerExpert),
              ...(a.usagePerTask ? { usagePerTask: Array.from(a.usagePerTask), numTasks: a.numTasks } : {}),
            })),
            ...(this.parallel ? { comm: commRecord(window.comm, n) } : {}),
          });
          window = {
            loss: 0,
            nll: 0,
            aux: 0,
            z: 0,
            gnorm: 0,
            tokens: 0,
            steps: 0,
            skipped: 0,
            time: { data: 0, forward: 0, backward: 0, optimizer: 0, total: 0 },
            comm: emptyComm(),
          };
          moeAcc = new Map();
          disk = { read: 0, written: 0 };
        }
        const evalNow = c.evalEvery > 0 && this.step % c.evalEvery === 0 && !r.skipped;
        if (evalNow) lastDev = await this.evaluate();
        const improved = evalNow && lastDev !== undefined && lastDev.loss <= this.bestDevLoss;
        if ((c.saveEvery > 0 && this.step % c.saveEvery === 0 && !r.skipped) || improved) {
          lastSaved = await this.save(improved, lastDev);
        }
        await new Promise((resolve) => setImmediate(resolve)); // lets signals in
      }
      if (!lastSaved.endsWith(`_${this.step}`) || this.stopRequested) {
        if (!this.stopRequested && c.evalEvery === 0) lastDev = await this.evaluate();
        const improved = lastDev !== undefined && lastDev.loss <= this.bestDevLoss;
        lastSaved = await this.save(improved, lastDev);
      }
    } finally {
      this.progress.done();
      if (this.opts.handleSignals ?? true) for (const [s, h] of handlers) process.off(s, h);
    }
    return {
      steps: this.step,
      stoppedBy: this.stopRequested ? "signal" : "max-steps",
      skippedSteps: this.skippedSteps,
      lastCheckpoint: lastSaved,
      ...(Number.isFinite(this.bestDevLoss) ? { bestDevLoss: this.bestDevLoss } : {}),
      ...(resumedFrom ? { resumedFrom } : {}),
      ...(lastDev ? { lastDev } : {}),
      seconds: (performance.now() - start) / 1000,
      tokens,
    };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
