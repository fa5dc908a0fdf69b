// Word-level distillation as a batch source: wraps the training data stream and attaches to
// every batch the teacher's targets, so the trainer's forward/backward sees only the student.
// The teacher runs here, outside the gradient scope (evaluation mode, no tape); with a cache,
// records are read by the batch's iterator position and only misses wake the teacher.
import type { Transformer } from "@polymoe/model";
import { type BatchSource, type TrainBatch, type TrainLoss, toModelBatch } from "@polymoe/train";

import { batchDigest, type TopKCache } from "./cache.js";
import { DistillError } from "./errors.js";
import { checkKdOptions, distillationLoss, type TeacherTargets, type TopKTail } from "./kd_loss.js";
import { disposeTargets, fullTargets, teacherLogits, topKTargets } from "./targets.js";

/** A training batch that knows its position in the data stream (e.g. @polymoe/data's Batch). */
export interface KeyedBatch extends TrainBatch {
  /** Batches the iterator produced before this one (resumes restore it). */
  step: number;
}

/** A batch with the teacher's targets on its real target tokens. */
export interface DistillBatch extends TrainBatch {
  step: number;
  teacher: TeacherTargets;
}

export interface DistillSourceOptions {
  /** The student's training stream. */
  data: BatchSource<KeyedBatch>;
  /** The teacher, or a function loading it on first need (a fully cached run never loads it). */
  teacher: Transformer | (() => Transformer);
  /** Softmax temperature of the targets. */
  temperature: number;
  /** Top-K cache: hits are read, misses computed and stored. Absent = full targets on the fly. */
  cache?: TopKCache;
  /** Seed of the teacher's routing randomness (mixed with the batch position). */
  seed?: number;
}

export interface DistillSourceStats {
  /** Batches whose targets the teacher computed. */
  teacherBatches: number;
  /** Wall time of those teacher forwards and target extraction (ms). */
  teacherMs: number;
  /** Batches read from the cache. */
  cacheHits: number;
  /** Wall time of cache reads (ms). */
  cacheMs: number;
}

/**
 * A BatchSource of DistillBatch. The targets of batch i stay valid until batch i + 1 is
 * drawn (the trainer uses a batch before drawing the next); dispose() releases the last.
 * state() flushes the cache first, so a checkpoint never points past the cached records.
 */
export class DistillSource implements BatchSource<DistillBatch> {
  readonly stats: DistillSourceStats = { teacherBatches: 0, teacherMs: 0, cacheHits: 0, cacheMs: 0 };
  private model: Transformer | undefined;
  private readonly ownsTeacher: boolean;
  private last: TeacherTargets | undefined;

  constructor(private readonly opts: DistillSourceOptions) {
    checkKdOptions({ alpha: 1, temperature: opts.temperature, labelSmoothing: 0 });
    if (opts.cache && opts.cache.header.temperature !== opts.temperature) {
      throw new DistillError(
        "CACHE_MISMATCH",
        `teacher cache ${opts.cache.dir} holds targets at temperature ${opts.cache.header.temperature}, this run uses ${opts.temperature}`,
      );
    }
    this.ownsTeacher = typeof opts.teacher === "function";
    if (typeof opts.teacher !== "function") this.model = opts.teacher;
  }

  /** The teacher (loaded now if it was not yet). */
  teacher(): Transformer {
    if (!this.model) this.model = (this.opts.teacher as () => Transformer)();
    return this.model;
  }

  /** Whether the teacher has been loaded. */
  get teacherLoaded(): boolean {
    return this.model !== undefined;
  }

  next(): IteratorResult<DistillBatch> {
    disposeTargets(this.last);
    this.last = undefined;
    const n = this.opts.data.next();
    if (n.done) return { done: true, value: undefined };
    const b = n.value;
    if (!Number.isInteger(b.step) || b.step < 0) {
      throw new DistillError(
        "INVALID_ARGUMENT",
        `distillation needs batches that carry their stream position ('step', a non-negative integer), got ${b.step}`,
      );
    }
    const cache = this.opts.cache;
    let teacher: TeacherTargets | undefined;
    const digest = cache ? batchDigest(b) : undefined;
    if (cache) {
      const t0 = performance.now();
      teacher = cache.get(b.step, digest as NonNullable<typeof digest>);
      if (teacher) {
        this.stats.cacheHits++;
        this.stats.cacheMs += performance.now() - t0;
      }
    }
    if (!teacher) {
      const t0 = performance.now();
      const model = this.teacher();
      const logits = teacherLogits(model, toModelBatch(b), ((this.opts.seed ?? 1) * 1000003 + b.step) >>> 0);
      try {
        teacher = cache
          ? topKTargets(logits, b.tgtMask, this.opts.temperature, cache.header.topK)
          : fullTargets(logits, b.tgtMask, this.opts.temperature);
      } finally {
        logits.dispose();
      }
      if (cache && teacher.kind === "topk") cache.put(b.step, digest as NonNullable<typeof digest>, teacher);
      this.stats.teacherBatches++;
      this.stats.teacherMs += performance.now() - t0;
    }
    this.last = teacher;
    return { done: false, value: { ...b, teacher } };
  }

  state(): unknown {
    this.opts.cache?.flush();
    return this.opts.data.state();
  }

  restore(state: never): void {
    this.opts.data.restore(state);
  }

  /** Flushes the cache and releases the last targets (and the teacher, if this source loaded it). */
  dispose(): void {
    this.opts.cache?.flush();
    disposeTargets(this.last);
    this.last = undefined;
    if (this.ownsTeacher && this.model) {
      this.model.dispose();
      this.model = undefined;
    }
  }
}

/** What kdTrainLoss needs. */
export interface KdTrainLossOptions {
  alpha: number;
  temperature: number;
  /** Top-K targets only (default "spread"). */
  tail?: TopKTail;
}

/** Running sums of the KD loss's parts since the last read (for logs). */
export interface KdLossMeter {
  /** Mean KL per token, mean cross-entropy per token, micro-batches, since the last reset. */
  read(): { kl: number; ce: number; batches: number };
  reset(): void;
}

/**
 * The Trainer's loss for word-level distillation over a DistillSource: distillationLoss of
 * the student's logits against the batch's teacher targets, label smoothing from the trainer
 * config. Returns the loss and a meter of its KL and cross-entropy parts.
 */
export function kdTrainLoss(opts: KdTrainLossOptions): { loss: TrainLoss<DistillBatch>; meter: KdLossMeter } {
  checkKdOptions({
    alpha: opts.alpha,
    temperature: opts.temperature,
    labelSmoothing: 0,
    ...(opts.tail ? { tail: opts.tail } : {}),
  });
  let kl = 0;
  let ce = 0;
  let batches = 0;
  const loss: TrainLoss<DistillBatch> = ({ output, batch, labelSmoothing }) => {
    const l = distillationLoss(output.logits, batch.teacher, batch.tgtOutIds, batch.tgtMask, {
      alpha: opts.alpha,
      temperature: opts.temperature,
      labelSmoothing,
      ...(opts.tail ? { tail: opts.tail } : {}),
    });
    kl += l.kl.dataSync()[0] as number;
    ce += l.ce.dataSync()[0] as number;
    batches++;
    return { loss: l.loss, nll: l.nll, tokens: l.tokens };
  };
  return {
    loss,
    meter: {
      read: () => ({ kl: kl / Math.max(1, batches), ce: ce / Math.max(1, batches), batches }),
      reset: () => {
        kl = 0;
        ce = 0;
        batches = 0;
      },
    },
  };
}
