// BLEU (Papineni et al., 2002) as sacreBLEU 2.x computes it.
//
// Per segment: lowercase (optional), strip trailing whitespace, tokenize, split on
// whitespace; count hypothesis n-grams of orders 1..N and clip each by its highest
// count in any one reference; take the reference length closest to the hypothesis
// length (the shorter one on a tie). The corpus score is computed once from the
// summed statistics:
//
//   BLEU = BP * exp( (1/N') * sum_{n=1..N'} log p_n ),   p_n = 100 * matches_n / total_n
//   BP   = 1 if c >= r, exp(1 - r/c) if 0 < c < r, 0 if c = 0     (c: hyp length, r: ref length)
//
// where N' = N, or with effective order the number of orders the hypotheses have
// at all. Orders with no match are smoothed (see computeBleu).

import { type BleuConfig, type BleuOptions, resolveBleuConfig, SMOOTH_DEFAULTS } from "./config.js";
import { alignCorpus, type ReferenceCount, type ReferenceStreams } from "./corpus.js";
import { MetricsError } from "./errors.js";
import { formatFixed } from "./format.js";
import { clippedMatches, type NgramCounts, wordNgrams } from "./ngrams.js";
import { provenance, type Signature } from "./signature.js";
import { lower, rstrip, splitWhitespace } from "./text.js";
import { getTokenizer, type Tokenizer } from "./tokenizers/index.js";

/** BLEU's sufficient statistics, summed over any number of segments. */
export interface BleuStatistics {
  /** Hypothesis length in tokens. */
  sysLen: number;
  /** Effective reference length (closest reference per segment). */
  refLen: number;
  /** `<int>[order]`: clipped n-gram matches of orders 1..N. */
  correct: readonly number[];
  /** `<int>[order]`: hypothesis n-grams of orders 1..N. */
  total: readonly number[];
}

/** A BLEU score with everything sacreBLEU reports about it. */
export interface BleuScore {
  readonly name: "BLEU";
  /** 0..100. */
  readonly score: number;
  /** `<int>[order]`: clipped matches per order (before any add-k smoothing). */
  readonly counts: readonly number[];
  /** `<int>[order]`: hypothesis n-grams per order (before any add-k smoothing). */
  readonly totals: readonly number[];
  /** `<float>[order]`: smoothed precisions in percent, as sacreBLEU prints them (0 past the last order with n-grams). */
  readonly precisions: readonly number[];
  /** Brevity penalty. */
  readonly bp: number;
  readonly sysLen: number;
  readonly refLen: number;
  /** sysLen / refLen, or 0 when refLen is 0. */
  readonly ratio: number;
  readonly signature: Signature;
}

/** BLEU of a whole corpus against one or more reference streams (sacreBLEU's `BLEU(...).corpus_score`). */
export function corpusBleu(
  hypotheses: readonly string[],
  references: ReferenceStreams,
  options: BleuOptions = {},
): BleuScore {
  const config = resolveBleuConfig(options);
  const corpus = alignCorpus(hypotheses, references);
  const preprocess = preprocessor(config);
  const N = config.maxNgramOrder;
  const sum = {
    sysLen: 0,
    refLen: 0,
    correct: new Array<number>(N).fill(0),
    total: new Array<number>(N).fill(0),
  };
  corpus.referencesBySegment.forEach((refs, i) => {
    const seg = segmentStatistics(preprocess(corpus.hypotheses[i]!), refs.map(preprocess), N);
    sum.sysLen += seg.sysLen;
    sum.refLen += seg.refLen;
    for (let n = 0; n < N; n++) {
      sum.correct[n]! += seg.correct[n]!;
      sum.total[n]! += seg.total[n]!;
    }
  });
  return { ...computeBleu(sum, config), signature: bleuSignature(config, corpus.nrefs) };
}

/**
 * BLEU of one sentence against its references (sacreBLEU's `sentence_bleu`):
 * effective order is on unless `options.effectiveOrder` says otherwise.
 */
export function sentenceBleu(
  hypothesis: string,
  references: readonly string[],
  options: BleuOptions = {},
): BleuScore {
  if (!Array.isArray(references)) {
    throw new MetricsError(
      "INVALID_INPUT",
      `references of a sentence must be an array of strings; got ${typeof references}`,
    );
  }
  return corpusBleu(
    [hypothesis],
    references.map((r) => [r]),
    { effectiveOrder: true, ...options },
  );
}

/**
 * BLEU from summed sufficient statistics (sacreBLEU's `BLEU.compute_bleu`), so
 * statistics of several corpora can be pooled or resampled. Smoothing of an order
 * n with no matches:
 * - `exp`: the k-th such order (k = 1, 2, ...) gets p_n = 100 / (2^k * total_n) (NIST mteval);
 * - `floor`: p_n = 100 * smoothValue / total_n;
 * - `add-k`: every order n >= 2 gets p_n = 100 * (matches_n + k) / (total_n + k), matched or not;
 * - `none`: p_n = 0, so BLEU = 0.
 * With no match at any order the score is 0 whatever the smoothing. An order with no
 * hypothesis n-grams ends the loop: later precisions stay 0, which zeroes the score
 * unless effective order stops the average before them.
 */
export function computeBleu(stats: BleuStatistics, options: BleuOptions = {}): Omit<BleuScore, "signature"> {
  const config = resolveBleuConfig(options);
  const N = config.maxNgramOrder;
  if (stats.correct.length !== N || stats.total.length !== N) {
    throw new MetricsError(
      "INVALID_INPUT",
      `statistics hold ${stats.correct.length} match and ${stats.total.length} total counts but maxNgramOrder is ${N}; ` +
        "pass one count per n-gram order",
    );
  }
  const { sysLen, refLen } = stats;
  const smoothValue = config.smoothValue ?? smoothDefault(config.smoothMethod);
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const ratio = refLen ? sysLen / refLen : 0;
  const precisions = new Array<number>(N).fill(0);
  const result = (score: number) => ({
    name: "BLEU" as const,
    score,
    counts: [...stats.correct],
    totals: [...stats.total],
    precisions,
    bp,
    sysLen,
    refLen,
    ratio,
  });
  if (stats.correct.every((c) => c === 0)) return result(0);

  const correct = [...stats.correct];
  const total = [...stats.total];
  let smoothMteval = 1;
  let effectiveOrder = N;
  for (let n = 1; n <= N; n++) {
    if (config.smoothMethod === "add-k" && n > 1) {
      correct[n - 1]! += smoothValue;
      total[n - 1]! += smoothValue;
    }
    if (total[n - 1] === 0) break;
    if (config.effectiveOrder) effectiveOrder = n;
    if (correct[n - 1] === 0) {
      if (config.smoothMethod === "exp") {
        smoothMteval *= 2;
        precisions[n - 1] = 100 / (smoothMteval * total[n - 1]!);
      } else if (config.smoothMethod === "floor") {
        precisions[n - 1] = (100 * smoothValue) / total[n - 1]!;
      }
    } else {
      precisions[n - 1] = (100 * correct[n - 1]!) / total[n - 1]!;
    }
  }
  let logSum = 0;
  for (let n = 0; n < effectiveOrder; n++) logSum += flooredLog(precisions[n]!);
  return result(bp * Math.exp(logSum / effectiveOrder));
}

/** log(x), with log(0) floored to -9999999999 as sacreBLEU does (so exp() of the mean is exactly 0). */
function flooredLog(x: number): number {
  return x === 0 ? -9999999999 : Math.log(x);
}

function smoothDefault(method: BleuConfig["smoothMethod"]): number {
  return method === "floor" || method === "add-k" ? SMOOTH_DEFAULTS[method] : 0;
}

/** Lowercase (optional), strip trailing whitespace, tokenize, split into tokens. */
function preprocessor(config: BleuConfig): (line: string) => string[] {
  const tokenizer: Tokenizer = getTokenizer(config.tokenize);
  return (line) => splitWhitespace(tokenizer(rstrip(config.lowercase ? lower(line) : line)));
}

/** One segment's statistics: `[sysLen, refLen, correct[N], total[N]]` in named form. */
function segmentStatistics(
  hyp: readonly string[],
  refs: readonly (readonly string[])[],
  N: number,
): BleuStatistics {
  // Reference n-gram counts: per n-gram, its highest count in any one reference.
  let refCounts: NgramCounts[] | undefined;
  const refLens: number[] = [];
  for (const ref of refs) {
    const counts = wordNgrams(ref, N);
    refLens.push(ref.length);
    if (refCounts === undefined) {
      refCounts = counts;
      continue;
    }
    counts.forEach((order, n) => {
      const merged = refCounts![n]!;
      for (const [ngram, c] of order) {
        if (c > (merged.get(ngram) ?? 0)) merged.set(ngram, c);
      }
    });
  }
  const hypCounts = wordNgrams(hyp, N);
  const correct: number[] = [];
  const total: number[] = [];
  for (let n = 0; n < N; n++) {
    correct.push(clippedMatches(hypCounts[n]!, refCounts![n]!));
    total.push(Math.max(0, hyp.length - n));
  }
  return { sysLen: hyp.length, refLen: closestRefLen(hyp.length, refLens), correct, total };
}

/** The reference length closest to the hypothesis length; the shorter one on a tie. */
function closestRefLen(hypLen: number, refLens: readonly number[]): number {
  let best = refLens[0]!;
  for (const len of refLens) {
    const d = Math.abs(hypLen - len);
    const bestD = Math.abs(hypLen - best);
    if (d < bestD || (d === bestD && len < best)) best = len;
  }
  return best;
}

function bleuSignature(config: BleuConfig, nrefs: ReferenceCount): Signature {
  let smooth: string = config.smoothMethod;
  if (config.smoothMethod === "floor" || config.smoothMethod === "add-k") {
    smooth += `[${formatFixed(config.smoothValue ?? SMOOTH_DEFAULTS[config.smoothMethod], 2)}]`;
  }
  return {
    metric: "BLEU",
    entries: [
      ["nrefs", String(nrefs)],
      ["case", config.lowercase ? "lc" : "mixed"],
      ["eff", config.effectiveOrder ? "yes" : "no"],
      ["tok", config.tokenize],
      ["smooth", smooth],
      ...provenance(),
    ],
  };
}
