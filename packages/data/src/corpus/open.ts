// Reading a prepared corpus: its manifest, tokenizer, evaluation sets (raw text) and
// tokenized training pairs.
import { promises as fsp } from "node:fs";
import path from "node:path";

import { DataError } from "../errors.js";
import { loadTokenizer, type Tokenizer } from "../tokenizer/tokenizer.js";
import { readLines } from "../util/fs.js";
import { type CorpusManifest, MANIFEST_FORMAT, MANIFEST_VERSION } from "./manifest.js";
import { type PairTokens, readPairTokens } from "./tokens_file.js";

/** An opened corpus directory. */
export interface Corpus {
  dir: string;
  manifest: CorpusManifest;
  /** English first, then the target languages. */
  languages: readonly string[];
}

/** Opens `<dir>/manifest.json`; BAD_CORPUS when it is missing, incomplete or of another version. */
export async function openCorpus(dir: string): Promise<Corpus> {
  const file = path.join(dir, "manifest.json");
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch {
    throw new DataError(
      "BAD_CORPUS",
      `${file}: not found. Build the corpus first: polymoe data prepare --preset quick --out ${dir}`,
    );
  }
  let m: CorpusManifest;
  try {
    m = JSON.parse(text) as CorpusManifest;
  } catch (e) {
    throw new DataError("BAD_CORPUS", `${file}: invalid JSON (${(e as Error).message})`);
  }
  if (m.format !== MANIFEST_FORMAT || m.version !== MANIFEST_VERSION) {
    throw new DataError(
      "BAD_CORPUS",
      `${file}: format ${String(m.format)} v${String(m.version)}, expected ${MANIFEST_FORMAT} v${MANIFEST_VERSION}; rebuild with polymoe data prepare`,
    );
  }
  return { dir, manifest: m, languages: m.languages };
}

/** The corpus's tokenizer. */
export function corpusTokenizer(corpus: Corpus): Promise<Tokenizer> {
  return loadTokenizer(path.join(corpus.dir, corpus.manifest.tokenizer.file));
}

/** Names an evaluation set: a split ("dev", "test", "test-udhr", "test-handbook", ...) and a direction. */
export interface EvalSetId {
  split: string;
  /** "en-fr" (English source) or "fr-en" (English reference). */
  pair: string;
}

/** Sources and references of one evaluation direction, line-aligned, raw text. */
export interface EvalSet extends EvalSetId {
  srcLang: string;
  tgtLang: string;
  /** `[examples]` source sentences. */
  sources: string[];
  /** `[examples]` reference translations. */
  references: string[];
}

/** Every evaluation set of the corpus, both directions of each held-out file. */
export function listEvalSets(corpus: Corpus): EvalSetId[] {
  const out: EvalSetId[] = [];
  for (const [split, files] of Object.entries(corpus.manifest.splits)) {
    if (split === "train") continue;
    for (const [pair, f] of Object.entries(files)) {
      if (f.pairs === 0) continue;
      const lang = pair.slice(3);
      out.push({ split, pair }, { split, pair: `${lang}-en` });
    }
  }
  return out;
}

/**
 * Loads one evaluation direction. `pair` is "en-xx" or "xx-en"; the split file always
 * stores English first.
 */
export async function loadEvalSet(corpus: Corpus, split: string, pair: string): Promise<EvalSet> {
  const [a, b] = pair.split("-");
  if (!a || !b || (a !== "en" && b !== "en")) {
    throw new DataError("INVALID_ARGUMENT", `eval pair '${pair}' must be 'en-xx' or 'xx-en'`);
  }
  const lang = a === "en" ? b : a;
  const files = corpus.manifest.splits[split];
  if (!files) {
    throw new DataError(
      "INVALID_ARGUMENT",
      `no split '${split}' in ${corpus.dir}; splits: ${Object.keys(corpus.manifest.splits).join(", ")}`,
    );
  }
  const f = files[`en-${lang}`];
  if (!f) {
    throw new DataError(
      "INVALID_ARGUMENT",
      `split '${split}' has no '${lang}'; languages: ${Object.keys(files)
        .map((p) => p.slice(3))
        .join(", ")}`,
    );
  }
  const en: string[] = [];
  const xx: string[] = [];
  const file = path.join(corpus.dir, f.file);
  for await (const [n, line] of readLines(file)) {
    const tab = line.indexOf("\t");
    if (tab < 0) throw new DataError("BAD_CORPUS", `${file}:${n}: expected 'english<TAB>${lang}'`);
    en.push(line.slice(0, tab));
    xx.push(line.slice(tab + 1));
  }
  return a === "en"
    ? { split, pair, srcLang: "en", tgtLang: lang, sources: en, references: xx }
    : { split, pair, srcLang: lang, tgtLang: "en", sources: xx, references: en };
}

/** Tokenized training pairs of a corpus, held in memory (typed arrays). */
export interface TrainingData {
  tokenizer: Tokenizer;
  /** English first, then the target languages (the task space's language order). */
  languages: readonly string[];
  /** Target language → its English↔xx token arrays. */
  pairs: ReadonlyMap<string, PairTokens>;
  /**
   * Direction ("en-fr", "fr-en") → pairs that replace `pairs` for that direction's
   * translation stream (manifest `directedTokens`); absent for ordinary corpora.
   */
  directed?: ReadonlyMap<string, PairTokens>;
  /** Changes whenever the token data or tokenizer change (iterator states carry it). */
  fingerprint: string;
}

/** Loads the tokenizer and every `tokens/en-xx.bin` of a corpus. */
export async function loadTrainingData(corpus: Corpus): Promise<TrainingData> {
  const tokenizer = await corpusTokenizer(corpus);
  if (tokenizer.vocabSize !== corpus.manifest.tokenizer.vocabSize) {
    throw new DataError(
      "BAD_CORPUS",
      `${corpus.dir}: tokenizer.json has ${tokenizer.vocabSize} tokens, the manifest says ${corpus.manifest.tokenizer.vocabSize}; rebuild the corpus`,
    );
  }
  const pairs = new Map<string, PairTokens>();
  for (const lang of corpus.languages.slice(1)) {
    const t = corpus.manifest.tokens[`en-${lang}`];
    if (!t)
      throw new DataError(
        "BAD_CORPUS",
        `${corpus.dir}: manifest lists '${lang}' but has no token file for en-${lang}`,
      );
    pairs.set(lang, await readPairTokens(path.join(corpus.dir, t.file), tokenizer.vocabSize));
  }
  const directed = new Map<string, PairTokens>();
  for (const [pair, t] of Object.entries(corpus.manifest.directedTokens ?? {})) {
    const [a, b] = pair.split("-");
    const lang = a === "en" ? b : a;
    if (!lang || (a !== "en" && b !== "en") || !corpus.languages.includes(lang) || lang === "en") {
      throw new DataError(
        "BAD_CORPUS",
        `${corpus.dir}: manifest directedTokens has '${pair}'; expected en-xx or xx-en with xx one of ${corpus.languages.slice(1).join(", ")}`,
      );
    }
    directed.set(pair, await readPairTokens(path.join(corpus.dir, t.file), tokenizer.vocabSize));
  }
  return {
    tokenizer,
    languages: corpus.languages,
    pairs,
    ...(directed.size > 0 ? { directed } : {}),
    fingerprint: corpus.manifest.fingerprint,
  };
}

/**
 * Builds TrainingData from in-memory pairs (tests, small user pipelines): each language's
 * `[english, target]` strings are encoded with `tokenizer`.
 */
export function trainingDataFromPairs(
  tokenizer: Tokenizer,
  byLanguage: ReadonlyMap<string, ReadonlyArray<readonly [string, string]>>,
): TrainingData {
  const pairs = new Map<string, PairTokens>();
  for (const [lang, rows] of byLanguage) {
    tokenizer.langTag(lang);
    const en: number[] = [];
    const xx: number[] = [];
    const enOff = [0];
    const xxOff = [0];
    for (const [e, x] of rows) {
      tokenizer.encodeInto(e, en);
      tokenizer.encodeInto(x, xx);
      enOff.push(en.length);
      xxOff.push(xx.length);
    }
    pairs.set(lang, {
      n: rows.length,
      enOffsets: Uint32Array.from(enOff),
      enIds: Uint32Array.from(en),
      xxOffsets: Uint32Array.from(xxOff),
      xxIds: Uint32Array.from(xx),
    });
  }
  const languages = ["en", ...[...byLanguage.keys()].filter((l) => l !== "en")];
  // Content hash of every id, so two different in-memory corpora never share a fingerprint.
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (const [lang, p] of pairs) {
    for (let i = 0; i < lang.length; i++) h1 = Math.imul(h1 ^ lang.charCodeAt(i), 16777619);
    for (const arr of [p.enOffsets, p.enIds, p.xxOffsets, p.xxIds]) {
      for (let i = 0; i < arr.length; i++) {
        h1 = Math.imul(h1 ^ arr[i]!, 16777619);
        h2 = Math.imul(h2 ^ arr[i]!, 2246822519) ^ (h1 >>> 15);
      }
    }
  }
  const fp = `mem-${(h1 >>> 0).toString(36)}${(h2 >>> 0).toString(36)}-${tokenizer.vocabSize}`;
  return { tokenizer, languages, pairs, fingerprint: fp };
}
