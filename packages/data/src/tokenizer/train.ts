// Tokenizer training: weighted word counts from a temperature-sampled mix of languages,
// then BPE (bpe_train.ts), then special tokens and one `<2xx>` tag per language.
import { LANGUAGE_CODES, languageInfo } from "../languages.js";
import { trainBpe } from "./bpe_train.js";
import { langTagToken, SPECIAL_TOKENS, Tokenizer } from "./tokenizer.js";

/**
 * Accumulates Metaspace word counts ("▁word" pieces). Weights are kept as integers
 * (×100) so the merge counts are exact sums and training is reproducible bit for bit.
 */
export class WordCounter {
  readonly counts = new Map<string, number>();
  sentences = 0;

  /** Adds one sentence with a sampling weight (1 = once). */
  add(text: string, weight = 1): void {
    const w = Math.max(1, Math.round(weight * 100));
    let s = text.normalize("NFC").replaceAll(" ", "▁");
    if (s.length === 0) return;
    if (!s.startsWith("▁")) s = `▁${s}`;
    let from = 0;
    while (from < s.length) {
      let to = s.indexOf("▁", from + 1);
      if (to < 0) to = s.length;
      const word = s.slice(from, to);
      this.counts.set(word, (this.counts.get(word) ?? 0) + w);
      from = to;
    }
    this.sentences++;
  }
}

export interface TrainTokenizerOptions {
  /** Total vocabulary size (specials, tags and byte tokens included). */
  vocabSize: number;
  /** Languages that get a `<2xx>` tag (English included). Every code must be in the language table. */
  languages: readonly string[];
  /** Fraction of character mass the base alphabet covers (default 0.9995). */
  characterCoverage?: number;
  /** Base alphabet cap (default vocabSize / 4). */
  maxAlphabet?: number;
  /** Minimum pair count, in sentences, for a merge (default 2). */
  minFrequency?: number;
  onProgress?: (size: number) => void;
}

/** Trains the joint tokenizer on counted words. */
export function trainTokenizer(words: WordCounter, o: TrainTokenizerOptions): Tokenizer {
  const langs = [...new Set(o.languages)];
  for (const l of langs) languageInfo(l, "tokenizer.languages");
  // Tags in table order so the same language set always gets the same ids.
  langs.sort((a, b) => LANGUAGE_CODES.indexOf(a) - LANGUAGE_CODES.indexOf(b));
  const specials = [
    SPECIAL_TOKENS.pad,
    SPECIAL_TOKENS.bos,
    SPECIAL_TOKENS.eos,
    SPECIAL_TOKENS.unk,
    SPECIAL_TOKENS.mask,
    ...langs.map(langTagToken),
  ];
  const model = trainBpe(words.counts, {
    vocabSize: o.vocabSize,
    specialTokens: specials,
    characterCoverage: o.characterCoverage ?? 0.9995,
    maxAlphabet: o.maxAlphabet ?? Math.floor(o.vocabSize / 4),
    minFrequency: (o.minFrequency ?? 2) * 100,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  return Tokenizer.fromModel(model);
}
