// Batched greedy and beam-search decoding over the incremental decoder state.
// Axis legend: B sentences, K beams, V vocabulary.

import { logSoftmax, logSoftmaxTopK } from "@polymoe/kernels";
import { Rng } from "@polymoe/routers";
import { dispose } from "@tensorflow/tfjs-core";

import { ModelError } from "./errors.js";
import type { DecoderState, EncoderMemory, ModelBatch, Transformer } from "./transformer.js";

/** The source side of a batch (what decoding needs). */
export type SourceBatch = Pick<ModelBatch, "batch" | "srcLen" | "src" | "srcMask" | "taskIds">;

export interface DecodeOptions {
  /** First decoder input (e.g. <s>). */
  bos: number;
  eos: number;
  /** Beams per sentence (1 = greedy). */
  beamSize?: number;
  /** Hypothesis score = sum log p / length^lengthPenalty (fairseq). */
  lengthPenalty?: number;
  /** Longest output (eos excluded): maxLenRatio * source length + maxLenOffset tokens (and the model's maxLength). */
  maxLenRatio?: number;
  maxLenOffset?: number;
  /** Forced tokens after bos, per sentence (e.g. a target-language tag). */
  prefix?: readonly Int32Array[];
  /**
   * Fewest output tokens (prefix included) before eos may be chosen (fairseq's
   * --min-len). With maxLenRatio 0 and maxLenOffset = minLength every output
   * has exactly that length: decoding benchmarks compare like for like.
   */
  minLength?: number;
}

export interface Hypothesis {
  /** Output tokens, without bos, forced prefix and eos. */
  tokens: Int32Array;
  /** Sum of token log-probabilities (incl. eos). */
  logProb: number;
  /** The length-normalised score the beam search ranked by. */
  score: number;
}

function sourceLengths(src: SourceBatch): number[] {
  return Array.from({ length: src.batch }, (_, b) => {
    let n = 0;
    for (let i = 0; i < src.srcLen; i++) n += src.srcMask[b * src.srcLen + i] as number;
    return n;
  });
}

function disposeState(s: DecoderState): void {
  for (const kv of s.self) if (kv) dispose([kv.k, kv.v]);
}

function disposeMemory(m: EncoderMemory): void {
  dispose([m.out, m.mask, m.outputWeight, ...m.crossKV.flatMap((kv) => [kv.k, kv.v])]);
}

/**
 * Decodes every sentence of `src`: greedy when beamSize is 1, beam search
 * otherwise. Returns the best hypothesis per sentence. Leaves no tensors behind.
 */
export function decode(model: Transformer, src: SourceBatch, opts: DecodeOptions): Hypothesis[] {
  const K = opts.beamSize ?? 1;
  if (!Number.isInteger(K) || K < 1)
    throw new ModelError("INVALID_ARGUMENT", `decode: beamSize must be >= 1, got ${K}`);
  const alpha = opts.lengthPenalty ?? 1;
  const ratio = opts.maxLenRatio ?? 1.5;
  const offset = opts.maxLenOffset ?? 10;
  const minLength = opts.minLength ?? 0;
  const V = model.config.vocabSize;
  const B = src.batch;
  const rng = new Rng(1);
  const srcLens = sourceLengths(src);
  const prefix = opts.prefix ?? [];
  if (prefix.length > 0 && prefix.length !== B) {
    throw new ModelError("INVALID_ARGUMENT", `decode: ${prefix.length} prefixes for ${B} sentences`);
  }
  const maxLen = srcLens.map((n, b) =>
    Math.min(model.config.maxLength - 1, Math.ceil(n * ratio + offset) + (prefix[b]?.length ?? 0)),
  );
  const longest = Math.max(0, ...maxLen);

  // Rows are sentence-major: row = b * K + k.
  let mem = model.encode(src, rng);
  // Caches sized for this batch's longest output (+ bos), not the model's maxLength.
  let state = model.initialState(Math.min(model.config.maxLength, longest + 1));
  if (K > 1) {
    const rows = Int32Array.from({ length: B * K }, (_, r) => Math.floor(r / K));
    const expanded = model.reorder(mem, state, rows);
    disposeMemory(mem);
    mem = expanded.mem;
    state = expanded.state;
  }
  const R = B * K;
  const seqs: number[][] = Array.from({ length: R }, () => []);
  const logProb = new Float64Array(R);
  // Only beam 0 of each sentence is alive at the start (the others would duplicate it).
  for (let r = 0; r < R; r++) if (r % K !== 0) logProb[r] = Number.NEGATIVE_INFINITY;
  const finished: Hypothesis[][] = Array.from({ length: B }, () => []);
  const done = new Uint8Array(B);
  let input = new Int32Array(R).fill(opts.bos);
  const kk = Math.min(2 * K, V);

  for (let t = 0; t <= longest && !done.every(Boolean); t++) {
    const step = model.decodeStep(mem, state, input, rng);
    disposeState(state);
    state = step.state;
    // Each row's 2K best tokens (2K so that K survive eos) and their
    // log-probabilities, in one pass over [R, V] on the native backend. A step
    // where some sentence is forced (its prefix) also reads every
    // log-probability, to score the forced tokens.
    const eosBarred = t < minLength; // t tokens generated so far
    const top = logSoftmaxTopK(step.logits, kk, eosBarred ? { exclude: opts.eos } : {});
    const topVals = top.values.dataSync() as Float32Array;
    const topIds = top.indices.dataSync() as Int32Array;
    dispose([top.values, top.indices]);
    let lp: Float32Array | null = null;
    if (prefix.some((p, b) => !done[b] && p !== undefined && t < p.length)) {
      // Not tidy(() => ....dataSync()): tidy walks whatever its function returns,
      // element by element for a typed array ([rows, vocab] here).
      const lpT = logSoftmax(step.logits);
      lp = lpT.dataSync() as Float32Array;
      lpT.dispose();
    }
    step.logits.dispose();
    const nextInput = new Int32Array(R).fill(opts.eos);
    const order = new Int32Array(R);
    for (let b = 0; b < B; b++) {
      const pre = prefix[b];
      const forced = pre && t < pre.length ? (pre[t] as number) : -1;
      if (done[b]) {
        for (let k = 0; k < K; k++) order[b * K + k] = b * K + k;
        continue;
      }
      // Candidates (row, token, total log-prob), best first.
      const cand: [number, number, number][] = [];
      for (let k = 0; k < K; k++) {
        const r = b * K + k;
        const base = logProb[r] as number;
        if (base === Number.NEGATIVE_INFINITY) continue;
        if (forced >= 0) {
          cand.push([r, forced, base + ((lp as Float32Array)[r * V + forced] as number)]);
          continue;
        }
        for (let i = 0; i < kk; i++) {
          const v = topIds[r * kk + i] as number;
          if (v >= 0) cand.push([r, v, base + (topVals[r * kk + i] as number)]);
        }
      }
      cand.sort((x, y) => y[2] - x[2]);
      // The token chosen now is output token t + 1: the last one allowed at maxLen.
      const atMax = t + 1 >= (maxLen[b] as number);
      let kept = 0;
      const newSeqs: number[][] = [];
      const newLp: number[] = [];
      for (const [r, v, s] of cand) {
        if (kept >= K) break;
        const seq = [...(seqs[r] as number[]), v];
        if (v === opts.eos || atMax) {
          const out = seq.slice(pre?.length ?? 0, v === opts.eos ? -1 : undefined);
          const len = seq.length;
          finished[b]!.push({ tokens: Int32Array.from(out), logProb: s, score: s / len ** alpha });
          if (K === 1) kept++;
          continue;
        }
        order[b * K + kept] = r;
        newSeqs.push(seq);
        newLp.push(s);
        nextInput[b * K + kept] = v;
        kept++;
      }
      for (let k = 0; k < K; k++) {
        const r = b * K + k;
        if (k < newSeqs.length) {
          seqs[r] = newSeqs[k] as number[];
          logProb[r] = newLp[k] as number;
        } else {
          seqs[r] = [];
          logProb[r] = Number.NEGATIVE_INFINITY;
          order[r] = b * K;
        }
      }
      // Done when K hypotheses ended and no live beam can beat the best of them
      // (scores only fall as hypotheses grow, up to length normalisation).
      const f = finished[b] as Hypothesis[];
      if (atMax || newSeqs.length === 0 || (f.length >= K && K === 1)) done[b] = 1;
      else if (f.length >= K) {
        const bestDone = Math.max(...f.map((h) => h.score));
        const bestLive = Math.max(...newLp.map((s, i) => s / (newSeqs[i] as number[]).length ** alpha));
        if (bestDone >= bestLive) done[b] = 1;
      }
    }
    input = nextInput;
    if (K > 1 && !done.every(Boolean)) {
      const moved = model.reorder(mem, state, order);
      disposeMemory(mem);
      disposeState(state);
      mem = moved.mem;
      state = moved.state;
    }
  }
  disposeState(state);
  disposeMemory(mem);
  return finished.map((f, b) => {
    if (f.length === 0)
      throw new ModelError("INVALID_ARGUMENT", `decode: sentence ${b} produced no hypothesis`);
    return f.reduce((best, h) => (h.score > best.score ? h : best));
  });
}

/** Convenience: greedy decoding (beam size 1). */
export function greedyDecode(
  model: Transformer,
  src: SourceBatch,
  opts: Omit<DecodeOptions, "beamSize">,
): Hypothesis[] {
  return decode(model, src, { ...opts, beamSize: 1 });
}
