// N-gram counting shared by BLEU and chrF. Counts are kept per order, so an n-gram's
// key only has to be unique within its order: word n-grams join their tokens with a
// space (tokens never contain whitespace), character n-grams are the substring.

/** `Map<ngram, count>` for one order. */
export type NgramCounts = Map<string, number>;

/** Word n-grams of orders 1..maxOrder: `<NgramCounts>[order - 1]`. */
export function wordNgrams(tokens: readonly string[], maxOrder: number): NgramCounts[] {
  const out: NgramCounts[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const counts: NgramCounts = new Map();
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = n === 1 ? tokens[i]! : tokens.slice(i, i + n).join(" ");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    out.push(counts);
  }
  return out;
}

/**
 * Character n-grams of orders 1..maxOrder over the code points of `text` (an astral
 * character is one character): `<NgramCounts>[order - 1]`.
 */
export function charNgrams(text: string, maxOrder: number): NgramCounts[] {
  // UTF-16 offsets of the code point boundaries, so each n-gram is one slice.
  const bounds: number[] = [0];
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    bounds.push(i + 1);
  }
  const length = bounds.length - 1;
  const out: NgramCounts[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const counts: NgramCounts = new Map();
    for (let i = 0; i + n <= length; i++) {
      const key = text.slice(bounds[i], bounds[i + n]);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    out.push(counts);
  }
  return out;
}

/** Sum of the counts. */
export function total(counts: NgramCounts): number {
  let sum = 0;
  for (const c of counts.values()) sum += c;
  return sum;
}

/** Clipped matches: sum over hypothesis n-grams of min(hypothesis count, reference count). */
export function clippedMatches(hyp: NgramCounts, ref: NgramCounts): number {
  let matches = 0;
  for (const [ngram, count] of hyp) {
    const r = ref.get(ngram);
    if (r !== undefined) matches += Math.min(count, r);
  }
  return matches;
}
