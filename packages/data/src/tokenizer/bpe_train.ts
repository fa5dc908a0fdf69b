// Byte-pair-encoding training over weighted word counts (Sennrich et al. 2016, with
// SentencePiece-style character coverage and byte fallback). Deterministic: ties in
// pair counts are broken by the smaller (left id, right id).
//
// Words are Metaspace pieces ("▁word"); no piece holds "▁" after its first character,
// so no merge ever crosses a word boundary, and encoding a whole sentence as one
// sequence (as tokenizers.js does) gives the same ids as encoding word by word.
import { DataError } from "../errors.js";
import { MaxHeap } from "./heap.js";

export interface BpeTrainOptions {
  /** Total vocabulary size including special tokens, language tags and the 256 byte tokens. */
  vocabSize: number;
  /** Tokens placed first, in order (specials, then language tags). */
  specialTokens: readonly string[];
  /** Fraction of character mass the base alphabet must cover (rarer characters use byte fallback). */
  characterCoverage: number;
  /** Upper bound on the base alphabet size. */
  maxAlphabet: number;
  /** Merges stop once the best pair's weighted count falls below this. */
  minFrequency: number;
  /** Called every ~1000 merges with the vocabulary size so far. */
  onProgress?: (size: number) => void;
}

export interface BpeModel {
  /** Token strings by id: `[vocab]`. */
  vocab: string[];
  /** Merges in rank order: [left token, right token]. */
  merges: Array<[string, string]>;
  /** Characters of the base alphabet. */
  alphabet: string[];
}

export const BYTE_TOKENS: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, "0")}>`,
);

/** The pair key for token ids a, b (< 2^21 each). */
const pairKey = (a: number, b: number) => a * 2097152 + b;

/**
 * Trains a BPE model on `words` (piece → weight). Layout of the result:
 * `[specialTokens][<0x00>..<0xFF>][alphabet by frequency][merged tokens]`.
 */
export function trainBpe(words: ReadonlyMap<string, number>, o: BpeTrainOptions): BpeModel {
  // 1. Base alphabet: the most frequent characters covering `characterCoverage` of the mass.
  const charMass = new Map<string, number>();
  let total = 0;
  for (const [w, c] of words) {
    for (const ch of w) charMass.set(ch, (charMass.get(ch) ?? 0) + c);
    total += c * w.length;
  }
  const chars = [...charMass.entries()].sort(
    (a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
  );
  const fixed = o.specialTokens.length + BYTE_TOKENS.length;
  const alphabetCap = Math.min(o.maxAlphabet, o.vocabSize - fixed);
  if (alphabetCap < 1) {
    throw new DataError(
      "INVALID_CONFIG",
      `tokenizer.vocabSize ${o.vocabSize} leaves no room after ${o.specialTokens.length} special/language tokens and 256 byte tokens; use at least ${fixed + 256}`,
    );
  }
  const alphabet: string[] = [];
  let covered = 0;
  for (const [ch, m] of chars) {
    if (alphabet.length >= alphabetCap) break;
    if (covered >= o.characterCoverage * total && ch !== "▁") continue;
    alphabet.push(ch);
    covered += m;
  }
  if (!alphabet.includes("▁") && alphabet.length < alphabetCap) alphabet.push("▁");

  const vocab: string[] = [...o.specialTokens, ...BYTE_TOKENS];
  const ids = new Map<string, number>();
  vocab.forEach((t, i) => {
    ids.set(t, i);
  });
  for (const ch of alphabet) {
    if (!ids.has(ch)) {
      ids.set(ch, vocab.length);
      vocab.push(ch);
    }
  }

  // 2. Words as id sequences (-1 = character outside the alphabet: a merge barrier).
  const seqs: Int32Array[] = [];
  const weights: number[] = [];
  for (const [w, c] of words) {
    const cps = Array.from(w);
    if (cps.length < 2) continue;
    const s = new Int32Array(cps.length);
    for (let i = 0; i < cps.length; i++) s[i] = ids.get(cps[i]!) ?? -1;
    seqs.push(s);
    weights.push(c);
  }

  // 3. Pair counts and, per pair, the words holding it (may list a word twice or stale).
  const counts = new Map<number, number>();
  const where = new Map<number, number[]>();
  const addPairs = (wi: number, s: Int32Array, len: number, sign: number, index: boolean) => {
    const w = weights[wi]! * sign;
    let last = -1;
    for (let i = 0; i + 1 < len; i++) {
      const a = s[i]!;
      const b = s[i + 1]!;
      if (a < 0 || b < 0) continue;
      const k = pairKey(a, b);
      counts.set(k, (counts.get(k) ?? 0) + w);
      if (index && k !== last) {
        let list = where.get(k);
        if (!list) {
          list = [];
          where.set(k, list);
        }
        list.push(wi);
        last = k;
      }
    }
  };
  const lens = new Int32Array(seqs.length);
  for (let wi = 0; wi < seqs.length; wi++) {
    lens[wi] = seqs[wi]!.length;
    addPairs(wi, seqs[wi]!, lens[wi]!, 1, true);
  }
  const heap = new MaxHeap();
  for (const [k, c] of counts) heap.push(c, k);

  // 4. Merge the most frequent pair until the vocabulary is full.
  const merges: Array<[string, string]> = [];
  let nextReport = vocab.length + 1000;
  while (vocab.length < o.vocabSize) {
    const top = heap.pop();
    if (!top) break;
    const [score, k] = top;
    const cur = counts.get(k) ?? 0;
    if (cur !== score) {
      if (cur > 0) heap.push(cur, k);
      continue;
    }
    if (cur < o.minFrequency) break;
    const a = Math.floor(k / 2097152);
    const b = k - a * 2097152;
    const merged = vocab[a]! + vocab[b]!;
    let id = ids.get(merged);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(merged);
      ids.set(merged, id);
    }
    merges.push([vocab[a]!, vocab[b]!]);
    const touched = new Set<number>();
    for (const wi of where.get(k) ?? []) {
      if (touched.has(wi)) continue;
      touched.add(wi);
      const s = seqs[wi]!;
      const len = lens[wi]!;
      let has = false;
      for (let i = 0; i + 1 < len; i++) {
        if (s[i] === a && s[i + 1] === b) {
          has = true;
          break;
        }
      }
      if (!has) continue;
      addPairs(wi, s, len, -1, false);
      let j = 0;
      for (let i = 0; i < len; i++) {
        if (i + 1 < len && s[i] === a && s[i + 1] === b) {
          s[j++] = id;
          i++;
        } else s[j++] = s[i]!;
      }
      lens[wi] = j;
      // Re-add this word's pairs; index only the pairs that contain the new token.
      const w = weights[wi]!;
      for (let i = 0; i + 1 < j; i++) {
        const x = s[i]!;
        const y = s[i + 1]!;
        if (x < 0 || y < 0) continue;
        const pk = pairKey(x, y);
        counts.set(pk, (counts.get(pk) ?? 0) + w);
        if (x === id || y === id) {
          let list = where.get(pk);
          if (!list) {
            list = [];
            where.set(pk, list);
          }
          if (list[list.length - 1] !== wi) list.push(wi);
        }
      }
    }
    counts.delete(k);
    where.delete(k);
    // Push the fresh counts of every pair involving the new token (others stay valid or are lazily fixed).
    for (const wi of touched) {
      const s = seqs[wi]!;
      const len = lens[wi]!;
      for (let i = 0; i + 1 < len; i++) {
        const x = s[i]!;
        const y = s[i + 1]!;
        if ((x === id || y === id) && x >= 0 && y >= 0) {
          const pk = pairKey(x, y);
          heap.push(counts.get(pk)!, pk);
        }
      }
    }
    if (vocab.length >= nextReport) {
      o.onProgress?.(vocab.length);
      nextReport += 1000;
    }
  }
  return { vocab, merges, alphabet };
}
