// The training batch iterator: temperature-sampled multitask examples in token-budget
// batches, sharded by rank, resumable exactly.
//
// Example layout (T = tokens of the stream's source/target, before specials):
//   translate  src    = <2tgt> src… </s>             (truncated to maxSourceLength)
//              tgtIn  = <s> tgt…                      (decoder input, shifted right)
//              tgtOut = tgt… </s>                     (decoder target)
//   denoise    src    = <2xx> noise(text)… </s>;  tgtIn/tgtOut as above on the clean text
import type { LoaderConfig } from "../config.js";
import type { TrainingData } from "../corpus/open.js";
import { DataError } from "../errors.js";
import { allocateQuotas, temperatureProbabilities } from "../sampling.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { hash53, mixSeed, mulberry32 } from "../util/hash.js";
import { noiseTokens } from "./noise.js";
import { type EpochPlan, type PlanConfig, planEpoch } from "./plan.js";
import { buildStreams, type Stream, type TaskSpace, type TaskType, taskSpaceOf } from "./streams.js";

/**
 * One training batch. B = examples, S = padded source length, T = padded target length.
 * Row-major int32 arrays ready for `tf.tensor2d(ids, [B, S], "int32")`.
 */
export interface Batch {
  /** Epoch this batch belongs to. */
  epoch: number;
  /** Batches this rank's iterator produced before this one (0-based, across epochs). */
  step: number;
  /** B: examples in the batch. */
  size: number;
  /** S: padded source length. */
  srcLen: number;
  /** T: padded target length. */
  tgtLen: number;
  /** `<int32>[B, S]` encoder input: tag, tokens, </s>, then pad. */
  srcIds: Int32Array;
  /** `<float32>[B, S]` 1 on tokens, 0 on padding. */
  srcMask: Float32Array;
  /** `<int32>[B]` non-pad source lengths. */
  srcLengths: Int32Array;
  /** `<int32>[B, T]` decoder input: <s> then the target tokens, then pad. */
  tgtInIds: Int32Array;
  /** `<int32>[B, T]` decoder target: the target tokens then </s>, then pad. */
  tgtOutIds: Int32Array;
  /** `<float32>[B, T]` 1 where tgtOutIds is a real token (loss weight), 0 on padding. */
  tgtMask: Float32Array;
  /** `<int32>[B]` non-pad target lengths. */
  tgtLengths: Int32Array;
  /** `<int32>[B]` index into taskSpace.languages of the language each example's decoder writes. */
  targetLangIds: Int32Array;
  /** `<int32>[B]` index into taskSpace.pairs ("en-fr", "fr-en", ..., "fr-fr" for denoising). */
  pairIds: Int32Array;
  /** `<int32>[B]` index into taskSpace.taskTypes (0 translate, 1 denoise). */
  taskTypeIds: Int32Array;
  /** Non-pad source tokens in the batch. */
  srcTokens: number;
  /** Non-pad target tokens (= predicted tokens; normalise the loss by this). */
  tgtTokens: number;
  /** Examples per pair name, for metrics. */
  pairs: Record<string, number>;
  /** `<int32>[B]` stream of each example and `<int32>[B]` its index in the stream (debugging, tests). */
  streamIds: Int32Array;
  exampleIndices: Int32Array;
}

/** JSON-serialisable position of an iterator. */
export interface BatchIteratorState {
  format: "polymoe-batch-iterator";
  version: 1;
  /** Fingerprint of the training data the state belongs to. */
  data: string;
  /** The loader config in force. */
  config: LoaderConfig;
  rank: number;
  worldSize: number;
  /** Epoch of the next batch. */
  epoch: number;
  /** Batches of that epoch this rank already consumed. */
  position: number;
  /** Batches this rank produced in total. */
  step: number;
}

export interface BatchIteratorOptions {
  /** This process's rank (default 0). */
  rank?: number;
  /** Number of data-parallel ranks (default 1). */
  worldSize?: number;
}

/** Sampling share of one stream (for logs). */
export interface StreamInfo {
  pair: string;
  task: TaskType;
  examples: number;
  probability: number;
  /** Draws per virtual epoch. */
  quota: number;
}

/** Validates the loader config against what the iterator needs. */
function checkConfig(c: LoaderConfig): void {
  if (c.maxTokens < c.maxSourceLength + c.maxTargetLength) {
    throw new DataError(
      "INVALID_CONFIG",
      `loader.maxTokens (${c.maxTokens}) is below maxSourceLength + maxTargetLength (${c.maxSourceLength} + ${c.maxTargetLength}): ` +
        `a longest example would not fit in a batch; raise maxTokens to at least ${c.maxSourceLength + c.maxTargetLength}`,
    );
  }
  if (c.taskMix.translate + c.taskMix.denoise <= 0) {
    throw new DataError("INVALID_CONFIG", "loader.taskMix: translate + denoise must be > 0");
  }
}

/**
 * An endless iterator of training batches over `data`. Iterating is deterministic for a
 * (data, config, rank, worldSize); `state()`/`restore()` resume exactly.
 */
export class BatchIterator implements IterableIterator<Batch> {
  readonly taskSpace: TaskSpace;
  readonly rank: number;
  readonly worldSize: number;
  /** Draws per virtual epoch (all ranks). */
  readonly examplesPerEpoch: number;
  private readonly streams: Stream[];
  private readonly quotas: Int32Array;
  private readonly probs: Float64Array;
  private readonly planCfg: PlanConfig;
  private epoch = 0;
  private position = 0;
  private step = 0;
  private plan: EpochPlan | undefined;
  private mine: Int32Array[] = [];

  constructor(
    private readonly data: TrainingData,
    private readonly config: LoaderConfig,
    options: BatchIteratorOptions = {},
  ) {
    checkConfig(config);
    this.rank = options.rank ?? 0;
    this.worldSize = options.worldSize ?? 1;
    if (!Number.isInteger(this.worldSize) || this.worldSize < 1) {
      throw new DataError("INVALID_ARGUMENT", `worldSize must be an integer >= 1, got ${this.worldSize}`);
    }
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) {
      throw new DataError(
        "INVALID_ARGUMENT",
        `rank must be an integer in [0, ${this.worldSize}), got ${this.rank}`,
      );
    }
    this.taskSpace = taskSpaceOf(data.languages);
    this.streams = buildStreams(data, this.taskSpace);
    const sizes = this.streams.map((s) => s.size);
    const mix = config.taskMix;
    const sum = mix.translate + mix.denoise;
    this.probs = new Float64Array(this.streams.length);
    for (const [task, share] of [
      ["translate", mix.translate / sum],
      ["denoise", mix.denoise / sum],
    ] as const) {
      if (share === 0) continue;
      const idx = this.streams.filter((s) => s.task === task).map((s) => s.id);
      const p = temperatureProbabilities(
        idx.map((i) => sizes[i]!),
        config.temperature,
      );
      idx.forEach((i, k) => {
        this.probs[i] = share * p[k]!;
      });
    }
    const translationPairs =
      this.streams.filter((s) => s.task === "translate").reduce((a, s) => a + s.size, 0) / 2;
    this.examplesPerEpoch =
      config.examplesPerEpoch > 0 ? config.examplesPerEpoch : Math.max(1, translationPairs);
    this.quotas = allocateQuotas(this.probs, this.examplesPerEpoch);
    this.planCfg = {
      seed: config.seed,
      maxTokens: config.maxTokens,
      maxBatchSize: config.maxBatchSize,
      sortWindow: config.sortWindow,
      maxSourceLength: config.maxSourceLength,
      maxTargetLength: config.maxTargetLength,
    };
  }

  /** Every stream's size, sampling probability and per-epoch quota. */
  streamInfo(): StreamInfo[] {
    return this.streams.map((s) => ({
      pair: this.taskSpace.pairs[s.pairId]!,
      task: s.task,
      examples: s.size,
      probability: this.probs[s.id]!,
      quota: this.quotas[s.id]!,
    }));
  }

  /** Batches per epoch for this rank (plans the current epoch if needed). */
  get batchesPerEpoch(): number {
    this.ensurePlan();
    return this.mine.length;
  }

  /** Source ids of a draw before tag and </s>: raw for translation, noised for denoising. */
  private sourceBody(s: Stream, example: number, draw: number): number[] {
    const raw = s.source(example);
    if (s.task !== "denoise") return Array.from(raw);
    const tok = this.data.tokenizer;
    return noiseTokens(
      raw,
      (id) => tok.isWordStart(id),
      tok.maskId,
      mulberry32(mixSeed(this.config.seed, 17, s.id, draw)),
      this.config.denoise,
    );
  }

  private ensurePlan(): void {
    if (this.plan?.epoch === this.epoch) return;
    this.plan = planEpoch(
      this.streams,
      this.quotas,
      this.epoch,
      this.planCfg,
      this.worldSize,
      (s, ex, draw) => (s.task === "denoise" ? this.sourceBody(s, ex, draw).length : s.source(ex).length),
    );
    this.mine = this.plan.batches.filter((_, i) => i % this.worldSize === this.rank);
  }

  /** The next batch (the iterator never ends: epochs follow one another). */
  nextBatch(): Batch {
    this.ensurePlan();
    while (this.position >= this.mine.length) {
      this.epoch++;
      this.position = 0;
      this.ensurePlan();
    }
    const slots = this.mine[this.position]!;
    const batch = this.materialize(this.plan!, slots);
    this.position++;
    this.step++;
    return batch;
  }

  next(): IteratorResult<Batch> {
    return { value: this.nextBatch(), done: false };
  }

  [Symbol.iterator](): IterableIterator<Batch> {
    return this;
  }

  /** The position to resume from: the next batch after `restore(state())` is the one `nextBatch()` would return now. */
  state(): BatchIteratorState {
    return {
      format: "polymoe-batch-iterator",
      version: 1,
      data: this.data.fingerprint,
      config: structuredClone(this.config),
      rank: this.rank,
      worldSize: this.worldSize,
      epoch: this.epoch,
      position: this.position,
      step: this.step,
    };
  }

  /** Moves to a saved position; STATE_MISMATCH says what differs when it belongs elsewhere. */
  restore(state: BatchIteratorState): void {
    if (state?.format !== "polymoe-batch-iterator" || state.version !== 1) {
      throw new DataError(
        "STATE_MISMATCH",
        `not a batch-iterator state (format ${String(state?.format)} v${String(state?.version)})`,
      );
    }
    const diffs: string[] = [];
    if (state.data !== this.data.fingerprint) {
      diffs.push(
        `training data (state ${state.data}, here ${this.data.fingerprint}: the corpus was rebuilt or differs)`,
      );
    }
    if (state.rank !== this.rank || state.worldSize !== this.worldSize) {
      diffs.push(
        `rank/world size (state rank ${state.rank} of ${state.worldSize}, here rank ${this.rank} of ${this.worldSize})`,
      );
    }
    for (const k of Object.keys(this.config) as Array<keyof LoaderConfig>) {
      if (JSON.stringify(state.config?.[k]) !== JSON.stringify(this.config[k])) {
        diffs.push(
          `loader.${k} (state ${JSON.stringify(state.config?.[k])}, here ${JSON.stringify(this.config[k])})`,
        );
      }
    }
    if (diffs.length > 0) {
      throw new DataError(
        "STATE_MISMATCH",
        `cannot resume this batch iterator; differences: ${diffs.join("; ")}`,
      );
    }
    if (
      !Number.isInteger(state.epoch) ||
      state.epoch < 0 ||
      !Number.isInteger(state.position) ||
      state.position < 0
    ) {
      throw new DataError(
        "STATE_MISMATCH",
        `state has an invalid position (epoch ${state.epoch}, position ${state.position})`,
      );
    }
    this.epoch = state.epoch;
    this.position = state.position;
    this.step = state.step;
    this.plan = undefined;
  }

  private materialize(plan: EpochPlan, slots: Int32Array): Batch {
    const tok = this.data.tokenizer;
    const cfg = this.config;
    const B = slots.length;
    const srcs: number[][] = [];
    const tgts: ArrayLike<number>[] = [];
    let S = 0;
    let T = 0;
    for (let b = 0; b < B; b++) {
      const slot = slots[b]!;
      const s = this.streams[plan.stream[slot]!]!;
      const ex = plan.example[slot]!;
      const body = this.sourceBody(s, ex, plan.draw[slot]!);
      if (body.length > cfg.maxSourceLength - 2) body.length = cfg.maxSourceLength - 2;
      const src = [tok.langTag(s.tgtLang), ...body, tok.eosId];
      let tgt = s.target(ex);
      if (tgt.length > cfg.maxTargetLength - 1)
        tgt = Array.prototype.slice.call(tgt, 0, cfg.maxTargetLength - 1) as number[];
      srcs.push(src);
      tgts.push(tgt);
      S = Math.max(S, src.length);
      T = Math.max(T, tgt.length + 1);
    }
    const pad = tok.padId;
    const srcIds = new Int32Array(B * S).fill(pad);
    const srcMask = new Float32Array(B * S);
    const srcLengths = new Int32Array(B);
    const tgtInIds = new Int32Array(B * T).fill(pad);
    const tgtOutIds = new Int32Array(B * T).fill(pad);
    const tgtMask = new Float32Array(B * T);
    const tgtLengths = new Int32Array(B);
    const targetLangIds = new Int32Array(B);
    const pairIds = new Int32Array(B);
    const taskTypeIds = new Int32Array(B);
    const streamIds = new Int32Array(B);
    const exampleIndices = new Int32Array(B);
    const pairs: Record<string, number> = {};
    let srcTokens = 0;
    let tgtTokens = 0;
    for (let b = 0; b < B; b++) {
      const slot = slots[b]!;
      const s = this.streams[plan.stream[slot]!]!;
      const src = srcs[b]!;
      const tgt = tgts[b]!;
      srcIds.set(src, b * S);
      srcMask.fill(1, b * S, b * S + src.length);
      srcLengths[b] = src.length;
      srcTokens += src.length;
      const tl = tgt.length + 1;
      tgtInIds[b * T] = tok.bosId;
      for (let i = 0; i < tgt.length; i++) {
        tgtInIds[b * T + 1 + i] = tgt[i]!;
        tgtOutIds[b * T + i] = tgt[i]!;
      }
      tgtOutIds[b * T + tgt.length] = tok.eosId;
      tgtMask.fill(1, b * T, b * T + tl);
      tgtLengths[b] = tl;
      tgtTokens += tl;
      targetLangIds[b] = s.targetLangId;
      pairIds[b] = s.pairId;
      taskTypeIds[b] = s.taskTypeId;
      streamIds[b] = s.id;
      exampleIndices[b] = plan.example[slot]!;
      const name = this.taskSpace.pairs[s.pairId]!;
      pairs[name] = (pairs[name] ?? 0) + 1;
    }
    return {
      epoch: plan.epoch,
      step: this.step,
      size: B,
      srcLen: S,
      tgtLen: T,
      srcIds,
      srcMask,
      srcLengths,
      tgtInIds,
      tgtOutIds,
      tgtMask,
      tgtLengths,
      targetLangIds,
      pairIds,
      taskTypeIds,
      srcTokens,
      tgtTokens,
      pairs,
      streamIds,
      exampleIndices,
    };
  }
}

/**
 * The encoder input for translating `text` into `tgtLang`, built exactly as training builds
 * it: `<int32>[tokens]` = `<2tgtLang>` + subword ids + `</s>`, truncated to `maxSourceLength`.
 * Decoding starts from `tokenizer.bosId`; stop at `tokenizer.eosId`.
 */
export function encodeSource(
  tokenizer: Tokenizer,
  text: string,
  tgtLang: string,
  maxSourceLength = 128,
): Int32Array {
  if (maxSourceLength < 2)
    throw new DataError("INVALID_ARGUMENT", `maxSourceLength must be >= 2, got ${maxSourceLength}`);
  const ids: number[] = [tokenizer.langTag(tgtLang)];
  tokenizer.encodeInto(text, ids);
  if (ids.length > maxSourceLength - 1) ids.length = maxSourceLength - 1;
  ids.push(tokenizer.eosId);
  return Int32Array.from(ids);
}

/** Creates a batch iterator (see BatchIterator). `config` must be a parsed LoaderConfig. */
export function createBatchIterator(
  data: TrainingData,
  config: LoaderConfig,
  options: BatchIteratorOptions = {},
): BatchIterator {
  return new BatchIterator(data, config, options);
}

/** A short stable hash of a batch's contents (tests and logs compare batches by it). */
export function batchDigest(b: Batch): string {
  let s = `${b.size}:${b.srcLen}:${b.tgtLen}:`;
  for (const arr of [b.srcIds, b.tgtInIds, b.tgtOutIds, b.pairIds]) {
    for (let i = 0; i < arr.length; i++) s += String.fromCharCode(arr[i]! & 0xffff);
  }
  return hash53(s).toString(36);
}
