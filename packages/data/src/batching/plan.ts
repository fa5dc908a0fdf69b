// The plan of one virtual epoch: which examples, in which batches, for which rank.
// A pure function of (streams, quotas, epoch, config, worldSize): the iterator rebuilds
// it on resume and gets the same batches.
//
//  1. draws    stream s contributes quota k_s examples per epoch: draws
//              [epoch·k_s, (epoch+1)·k_s) of its infinite sequence of seeded
//              permutations (every example once per cycle, a fresh order each cycle)
//  2. shuffle  all draws of the epoch, seeded by (seed, epoch)
//  3. bucket   consecutive windows of `sortWindow` draws are sorted by (max(S, T), T, S)
//              — the lengths the examples will have, noise included;
//              batches are cut greedily so that
//              size × (max source length + max target length) ≤ maxTokens
//  4. order    batches are shuffled (seeded by (seed, epoch))
//  5. shard    while the batch count is not a multiple of worldSize, the largest batch
//              is split in two: every rank gets the same number of batches, no example
//              is dropped or duplicated; rank r takes batches r, r + W, r + 2W, ...
import { DataError } from "../errors.js";
import { mixSeed, permutation } from "../util/hash.js";
import type { Stream } from "./streams.js";

export interface PlanConfig {
  seed: number;
  maxTokens: number;
  maxBatchSize: number;
  sortWindow: number;
  maxSourceLength: number;
  maxTargetLength: number;
}

export interface EpochPlan {
  epoch: number;
  /** Draw slot → stream id: `<int32>[draws]`. */
  stream: Int32Array;
  /** Draw slot → draw number in the stream's sequence: `<float64>[draws]` (seeds the noise). */
  draw: Float64Array;
  /** Draw slot → example index within the stream: `<int32>[draws]`. */
  example: Int32Array;
  /** Padded-length bounds per slot: `<int32>[draws]` (source incl. tag and </s>; target incl. <s>/</s>). */
  srcLen: Int32Array;
  tgtLen: Int32Array;
  /** Every batch of the epoch (all ranks), each `<int32>[batchSize]` of draw slots. */
  batches: Int32Array[];
}

/** Source length bound of an example: tag + tokens + </s>, capped. */
export const sourceLength = (tokens: number, cfg: PlanConfig) => Math.min(tokens + 2, cfg.maxSourceLength);
/** Target length of an example: tokens + 1 (<s> shifted in, </s> predicted), capped. */
export const targetLength = (tokens: number, cfg: PlanConfig) => Math.min(tokens + 1, cfg.maxTargetLength);

/** The example index of draw `j` of a stream of `size` examples (seeded permutation per cycle). */
export function streamExample(
  streamId: number,
  size: number,
  j: number,
  seed: number,
  cache: Map<string, Int32Array>,
): number {
  const cycle = Math.floor(j / size);
  const key = `${streamId}:${cycle}`;
  let perm = cache.get(key);
  if (!perm) {
    perm = permutation(size, mixSeed(seed, 11, streamId, cycle));
    cache.set(key, perm);
  }
  return perm[j - cycle * size]!;
}

/**
 * Source length of draw `draw` of example `example` of a stream, before the tag and </s>
 * (the iterator passes the noised length for denoising, so batches are cut on the
 * lengths they will really have). Defaults to the stream's raw source length.
 */
export type SourceTokens = (stream: Stream, example: number, draw: number) => number;

/** Plans epoch `epoch`. `quotas` is `<int32>[streams]` (draws per stream per epoch). */
export function planEpoch(
  streams: readonly Stream[],
  quotas: Int32Array,
  epoch: number,
  cfg: PlanConfig,
  worldSize: number,
  sourceTokens: SourceTokens = (s, ex) => s.source(ex).length,
): EpochPlan {
  let total = 0;
  for (const q of quotas) total += q;
  const stream = new Int32Array(total);
  const draw = new Float64Array(total);
  const example = new Int32Array(total);
  const srcLen = new Int32Array(total);
  const tgtLen = new Int32Array(total);
  // 1. draws
  let k = 0;
  for (const s of streams) {
    const q = quotas[s.id]!;
    if (q === 0) continue;
    const cache = new Map<string, Int32Array>();
    for (let t = 0; t < q; t++, k++) {
      const j = epoch * q + t;
      const ex = streamExample(s.id, s.size, j, cfg.seed, cache);
      stream[k] = s.id;
      draw[k] = j;
      example[k] = ex;
      srcLen[k] = sourceLength(sourceTokens(s, ex, j), cfg);
      tgtLen[k] = targetLength(s.target(ex).length, cfg);
    }
  }
  // 2. shuffle
  const order = permutation(total, mixSeed(cfg.seed, 12, epoch));
  // 3. bucket and cut
  let batches: Int32Array[] = [];
  const win = new Int32Array(Math.min(cfg.sortWindow, total));
  for (let w0 = 0; w0 < total; w0 += cfg.sortWindow) {
    const w1 = Math.min(total, w0 + cfg.sortWindow);
    const view = win.subarray(0, w1 - w0);
    for (let i = w0; i < w1; i++) view[i - w0] = order[i]!;
    // max(S, T) first groups examples whose padded size is alike on both sides (measured on
    // the quick corpus: 3.8% padding, vs 6.5% for (T, S) and 8.0% for S + T).
    const key = (a: number) => Math.max(srcLen[a]!, tgtLen[a]!) * 16777216 + tgtLen[a]! * 4096 + srcLen[a]!;
    const sorted = Array.from(view).sort((a, b) => key(a) - key(b) || a - b);
    let cur: number[] = [];
    let maxS = 0;
    let maxT = 0;
    for (const slot of sorted) {
      const s2 = Math.max(maxS, srcLen[slot]!);
      const t2 = Math.max(maxT, tgtLen[slot]!);
      if (
        cur.length > 0 &&
        ((cur.length + 1) * (s2 + t2) > cfg.maxTokens || cur.length + 1 > cfg.maxBatchSize)
      ) {
        batches.push(Int32Array.from(cur));
        cur = [];
        maxS = 0;
        maxT = 0;
      }
      cur.push(slot);
      maxS = Math.max(maxS, srcLen[slot]!);
      maxT = Math.max(maxT, tgtLen[slot]!);
    }
    if (cur.length > 0) batches.push(Int32Array.from(cur));
  }
  // 4. order
  const bperm = permutation(batches.length, mixSeed(cfg.seed, 13, epoch));
  batches = Array.from(bperm, (i) => batches[i]!);
  // 5. shard: make the count a multiple of worldSize by splitting the largest batches.
  if (batches.length < worldSize) {
    let examples = 0;
    for (const b of batches) examples += b.length;
    if (examples < worldSize) {
      throw new DataError(
        "NO_DATA",
        `an epoch has ${examples} examples, fewer than the world size ${worldSize}; raise examplesPerEpoch or use fewer ranks`,
      );
    }
  }
  while (batches.length % worldSize !== 0) {
    let best = -1;
    for (let i = 0; i < batches.length; i++)
      if (best < 0 || batches[i]!.length > batches[best]!.length) best = i;
    const b = batches[best]!;
    if (b.length < 2) {
      throw new DataError(
        "NO_DATA",
        `cannot give ${worldSize} ranks equal batch counts: ${batches.length} single-example batches; raise examplesPerEpoch`,
      );
    }
    const half = b.length >> 1;
    batches.splice(best, 1, b.subarray(0, half), b.subarray(half));
  }
  return { epoch, stream, draw, example, srcLen, tgtLen, batches };
}
