// chrF (Popović, 2015) and chrF++ (Popović, 2017) as sacreBLEU 2.x computes them.
//
// Character n-grams (orders 1..charOrder) are taken over code points of the
// segment with all whitespace removed (kept with `whitespace`); chrF++ adds word
// n-grams (orders 1..wordOrder) of the whitespace-split segment after splitting one
// ASCII punctuation mark off each word's end (or, failing that, its start). Per
// order the statistics are [hypothesis n-grams, reference n-grams, clipped matches],
// where the hypothesis count is 0 when the reference has no n-gram of that order.
// With several references, each segment keeps the statistics of its best-scoring
// reference (the first on a tie). The corpus score comes from the summed statistics:
//
//   P = mean over orders with hyp > 0 and ref > 0 of match/hyp, R likewise of match/ref,
//   chrF = 100 * (1 + beta^2) * P * R / (beta^2 * P + R)     (0 when P + R = 0)
//
// With `epsSmoothing` it is instead the mean over all orders of the per-order F-beta,
// with precision/recall of an empty side set to 1e-16 (chrF++.py, Moses, NLTK).

import { type ChrfConfig, type ChrfOptions, resolveChrfConfig } from "./config.js";
import { alignCorpus, type ReferenceCount, type ReferenceStreams } from "./corpus.js";
import { MetricsError } from "./errors.js";
import { charNgrams, clippedMatches, type NgramCounts, total, wordNgrams } from "./ngrams.js";
import { provenance, type Signature } from "./signature.js";
import { codePoints, lower, removeWhitespace, splitWhitespace } from "./text.js";

/** A chrF score with the statistics it came from. */
export interface ChrfScore {
  /** `chrF<beta>` followed by one `+` per word order: `chrF2`, `chrF2++`. */
  readonly name: string;
  /** 0..100. */
  readonly score: number;
  readonly charOrder: number;
  readonly wordOrder: number;
  readonly beta: number;
  /**
   * `<int>[3 * (charOrder + wordOrder)]`: summed [hyp, ref, match] per order, the
   * character orders first (sacreBLEU's layout), so corpora can be pooled with {@link computeChrf}.
   */
  readonly statistics: readonly number[];
  readonly signature: Signature;
}

/** ASCII punctuation (Python's `string.punctuation`), split off word edges for chrF++ word n-grams. */
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

/** chrF of a whole corpus against one or more reference streams (sacreBLEU's `CHRF(...).corpus_score`). */
export function corpusChrf(
  hypotheses: readonly string[],
  references: ReferenceStreams,
  options: ChrfOptions = {},
): ChrfScore {
  const config = resolveChrfConfig(options);
  const corpus = alignCorpus(hypotheses, references);
  const order = config.charOrder + config.wordOrder;
  const sum = new Array<number>(3 * order).fill(0);
  corpus.referencesBySegment.forEach((refs, i) => {
    const hyp = extractNgrams(corpus.hypotheses[i]!, config);
    let best: number[] = [];
    let bestF = -1;
    for (const ref of refs) {
      const stats = matchStatistics(hyp, extractNgrams(ref, config));
      const f = fScore(stats, config);
      if (f > bestF) {
        bestF = f;
        best = stats;
      }
    }
    for (let j = 0; j < sum.length; j++) sum[j]! += best[j]!;
  });
  return {
    name: chrfName(config),
    score: fScore(sum, config),
    charOrder: config.charOrder,
    wordOrder: config.wordOrder,
    beta: config.beta,
    statistics: sum,
    signature: chrfSignature(config, corpus.nrefs),
  };
}

/** chrF of one sentence against its references (sacreBLEU's `sentence_chrf`). */
export function sentenceChrf(
  hypothesis: string,
  references: readonly string[],
  options: ChrfOptions = {},
): ChrfScore {
  if (!Array.isArray(references)) {
    throw new MetricsError(
      "INVALID_INPUT",
      `references of a sentence must be an array of strings; got ${typeof references}`,
    );
  }
  return corpusChrf(
    [hypothesis],
    references.map((r) => [r]),
    options,
  );
}

/**
 * chrF (0..100) from [hyp, ref, match] statistics per order, character orders
 * first (sacreBLEU's `CHRF._compute_f_score`).
 */
export function computeChrf(statistics: readonly number[], options: ChrfOptions = {}): number {
  return fScore(statistics, resolveChrfConfig(options));
}

function fScore(statistics: readonly number[], config: ChrfConfig): number {
  const order = config.charOrder + config.wordOrder;
  if (statistics.length !== 3 * order) {
    throw new MetricsError(
      "INVALID_INPUT",
      `chrF statistics hold ${statistics.length} numbers but charOrder + wordOrder = ${order} needs 3 * ${order}`,
    );
  }
  const eps = 1e-16;
  const factor = config.beta ** 2;
  let score = 0;
  let effectiveOrder = 0;
  let avgPrec = 0;
  let avgRec = 0;
  for (let i = 0; i < order; i++) {
    const nHyp = statistics[3 * i]!;
    const nRef = statistics[3 * i + 1]!;
    const nMatch = statistics[3 * i + 2]!;
    const prec = nHyp > 0 ? nMatch / nHyp : eps;
    const rec = nRef > 0 ? nMatch / nRef : eps;
    const denom = factor * prec + rec;
    score += denom > 0 ? ((1 + factor) * prec * rec) / denom : eps;
    if (nHyp > 0 && nRef > 0) {
      avgPrec += prec;
      avgRec += rec;
      effectiveOrder++;
    }
  }
  if (config.epsSmoothing) return (100 * score) / order;
  if (effectiveOrder === 0) {
    avgPrec = 0;
    avgRec = 0;
  } else {
    avgPrec /= effectiveOrder;
    avgRec /= effectiveOrder;
  }
  if (avgPrec + avgRec === 0) return 0;
  return 100 * (((1 + factor) * avgPrec * avgRec) / (factor * avgPrec + avgRec));
}

/**
 * Words for chrF++ word n-grams: whitespace-split, then a word of two or more code
 * points loses one ASCII punctuation mark from its end, or else from its start, as a
 * separate token (`(hi)` -> `(hi`, `)`; `"hi` -> `"`, `hi`; `...` -> `..`, `.`).
 */
export function chrfWords(segment: string): string[] {
  const out: string[] = [];
  for (const word of splitWhitespace(segment)) {
    const chars = codePoints(word);
    if (chars.length === 1) {
      out.push(word);
    } else if (PUNCTUATION.has(chars[chars.length - 1]!)) {
      out.push(chars.slice(0, -1).join(""), chars[chars.length - 1]!);
    } else if (PUNCTUATION.has(chars[0]!)) {
      out.push(chars[0]!, chars.slice(1).join(""));
    } else {
      out.push(word);
    }
  }
  return out;
}

/** One segment's n-grams: character orders then word orders. */
interface SegmentNgrams {
  /** `<NgramCounts>[order]` */
  counts: NgramCounts[];
  /** `<int>[order]`: n-grams per order. */
  totals: number[];
}

/** Character then word n-gram counts of one (lowercased if configured) segment. */
function extractNgrams(segment: string, config: ChrfConfig): SegmentNgrams {
  const text = config.lowercase ? lower(segment) : segment;
  const counts = charNgrams(config.whitespace ? text : removeWhitespace(text), config.charOrder);
  if (config.wordOrder > 0) counts.push(...wordNgrams(chrfWords(text), config.wordOrder));
  return { counts, totals: counts.map(total) };
}

/** `[hyp, ref, match]` per order, the hypothesis count zeroed where the reference has no n-gram of that order. */
function matchStatistics(hyp: SegmentNgrams, ref: SegmentNgrams): number[] {
  const stats: number[] = [];
  hyp.counts.forEach((h, n) => {
    const r = ref.counts[n]!;
    stats.push(r.size > 0 ? hyp.totals[n]! : 0, ref.totals[n]!, clippedMatches(h, r));
  });
  return stats;
}

function chrfName(config: ChrfConfig): string {
  return `chrF${config.beta}${"+".repeat(config.wordOrder)}`;
}

function chrfSignature(config: ChrfConfig, nrefs: ReferenceCount): Signature {
  return {
    metric: "chrF",
    entries: [
      ["nrefs", String(nrefs)],
      ["case", config.lowercase ? "lc" : "mixed"],
      ["eff", config.epsSmoothing ? "no" : "yes"],
      ["nc", String(config.charOrder)],
      ["nw", String(config.wordOrder)],
      ["space", config.whitespace ? "yes" : "no"],
      ...provenance(),
    ],
  };
}
