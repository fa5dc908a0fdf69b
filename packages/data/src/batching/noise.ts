// Denoising noise for the monolingual task (BART / mBART): word dropout, span masking
// with Poisson span lengths (each span becomes one <mask>), and local shuffling. Works on
// whole words: a word is a token that starts with "▁" plus the pieces that follow it.
import { poisson, type Rng } from "../util/hash.js";

export interface NoiseOptions {
  /** Fraction of words covered by masked spans (mBART: 0.35). */
  maskRatio: number;
  /** Mean span length in words (BART: 3.5). */
  poissonLambda: number;
  /** Probability of deleting each word. */
  wordDropout: number;
  /** Local shuffle: a unit moves at most this many positions (0 = off). */
  shuffleWindow: number;
}

/**
 * Applies the noise to `ids` (`<int32>[tokens]`, no specials) and returns the noised
 * ids. Pure given `rng`. Never longer than the input; never empty for a non-empty input.
 * Steps, in order: (1) word dropout, (2) span masking, (3) local shuffle of the
 * remaining units (words and <mask> tokens).
 */
export function noiseTokens(
  ids: ArrayLike<number>,
  isWordStart: (id: number) => boolean,
  maskId: number,
  rng: Rng,
  o: NoiseOptions,
): number[] {
  // Words as [start, end) token ranges.
  const starts: number[] = [];
  for (let i = 0; i < ids.length; i++) if (i === 0 || isWordStart(ids[i]!)) starts.push(i);
  const nWords = starts.length;
  if (nWords === 0) return [];
  const wordEnd = (w: number) => (w + 1 < nWords ? starts[w + 1]! : ids.length);

  // (1) word dropout (keeping at least one word).
  let words: number[] = [];
  for (let w = 0; w < nWords; w++) if (!(o.wordDropout > 0 && rng() < o.wordDropout)) words.push(w);
  if (words.length === 0) words = [Math.floor(rng() * nWords)];

  // (2) span masking: mark ~maskRatio of the remaining words, spans ~ Poisson(λ) ≥ 1.
  const n = words.length;
  const masked = new Uint8Array(n);
  const goal = Math.round(o.maskRatio * n);
  let count = 0;
  for (let guard = 0; count < goal && guard < 4 * n + 8; guard++) {
    const len = Math.max(1, Math.min(goal - count, poisson(rng, o.poissonLambda)));
    const start = Math.floor(rng() * n);
    for (let k = start; k < Math.min(n, start + len); k++) {
      if (!masked[k]) {
        masked[k] = 1;
        count++;
      }
    }
  }
  // Units: a word index (>= 0) or -1 for one <mask> per masked run.
  const units: number[] = [];
  for (let k = 0; k < n; k++) {
    if (masked[k]) {
      if (k === 0 || !masked[k - 1]) units.push(-1);
    } else units.push(words[k]!);
  }

  // (3) local shuffle: sort by position + U[0, window + 1), so each unit moves ≤ window.
  let order = units.map((_, i) => i);
  if (o.shuffleWindow > 0 && units.length > 1) {
    const keys = units.map((_, i) => i + rng() * (o.shuffleWindow + 1));
    order = order.sort((a, b) => keys[a]! - keys[b]! || a - b);
  }
  const out: number[] = [];
  for (const u of order) {
    const w = units[u]!;
    if (w < 0) out.push(maskId);
    else for (let i = starts[w]!; i < wordEnd(w); i++) out.push(ids[i]!);
  }
  return out;
}
