import { type Corpus, type EvalSet, listEvalSets, loadEvalSet } from "@polymoe/data";
import { corpusBleu, corpusChrf } from "@polymoe/metrics";

import type { LoadedModel } from "./load.js";
import { bleuTokenizerFor, type TranslateOptions, translate } from "./translate.js";

export interface DirectionResult {
  pair: string;
  srcLang: string;
  tgtLang: string;
  sentences: number;
  bleu: number;
  chrf: number;
  chrfpp: number;
  /** The BLEU tokenizer used for this target language. */
  tokenize: string;
  /** Output tokens produced, and the seconds decoding took. */
  outputTokens: number;
  seconds: number;
  hypotheses: string[];
}

export interface Average {
  bleu: number;
  chrf: number;
  directions: number;
}

export interface EvalReport {
  checkpoint: string;
  split: string;
  decoding: TranslateOptions;
  directions: DirectionResult[];
  /** Means over directions: all, en->xx, xx->en, high- and low-resource languages. */
  averages: Record<"all" | "en-xx" | "xx-en" | "high" | "low", Average>;
  /** Languages counted as high resource (the better-resourced half by training pairs). */
  highResource: string[];
  decodeTokensPerSecond: number;
}

/** Names of the evaluation splits a corpus holds ("dev", "test", "test-udhr", ...). */
export function listAvailableSplits(corpus: Corpus): string[] {
  return [...new Set(listEvalSets(corpus).map((s) => s.split))];
}

/** The eval sets of `split` present in the corpus (both directions). */
export async function loadSplit(corpus: Corpus, split: string, maxSentences?: number): Promise<EvalSet[]> {
  const ids = listEvalSets(corpus).filter((s) => s.split === split);
  const sets: EvalSet[] = [];
  for (const id of ids) {
    const s = await loadEvalSet(corpus, id.split, id.pair);
    if (maxSentences !== undefined) {
      s.sources = s.sources.slice(0, maxSentences);
      s.references = s.references.slice(0, maxSentences);
    }
    sets.push(s);
  }
  return sets;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

/**
 * Translates every eval set with the model and scores each direction with
 * sacreBLEU-identical BLEU, chrF and chrF++; averages by direction and resource.
 */
export function evaluate(
  loaded: LoadedModel,
  split: string,
  sets: readonly EvalSet[],
  opts: TranslateOptions & {
    trainPairs?: Record<string, number>;
    onDirection?: (r: DirectionResult) => void;
  } = {},
): EvalReport {
  const directions: DirectionResult[] = [];
  for (const set of sets) {
    const t0 = performance.now();
    const hyps = translate(
      loaded.model,
      loaded.tokenizer,
      loaded.space,
      set.sources,
      set.srcLang,
      set.tgtLang,
      opts,
    );
    const seconds = (performance.now() - t0) / 1000;
    const outputTokens = hyps.reduce((n, h) => n + loaded.tokenizer.encode(h).length + 1, 0);
    const tokenize = bleuTokenizerFor(set.tgtLang);
    const refs = [set.references];
    const r: DirectionResult = {
      pair: set.pair,
      srcLang: set.srcLang,
      tgtLang: set.tgtLang,
      sentences: set.sources.length,
      bleu: corpusBleu(hyps, refs, { tokenize }).score,
      chrf: corpusChrf(hyps, refs).score,
      chrfpp: corpusChrf(hyps, refs, { wordOrder: 2 }).score,
      tokenize,
      outputTokens,
      seconds,
      hypotheses: hyps,
    };
    directions.push(r);
    opts.onDirection?.(r);
  }
  return {
    checkpoint: loaded.dir,
    split,
    decoding: {
      beamSize: opts.beamSize ?? 1,
      lengthPenalty: opts.lengthPenalty ?? 1,
      batchSize: opts.batchSize ?? 32,
      maxLenRatio: opts.maxLenRatio ?? 1.5,
      maxLenOffset: opts.maxLenOffset ?? 10,
    },
    directions,
    ...summarizeDirections(directions, opts.trainPairs ?? {}),
  };
}

/**
 * Means over directions (all, en->xx, xx->en, high- and low-resource languages: the
 * better-resourced half by training pairs, `trainPairs[language]`) and the decoding
 * rate over all of them — what evaluate() reports, for directions gathered elsewhere
 * (e.g. from one extracted subnetwork per task).
 */
export function summarizeDirections(
  directions: readonly Omit<DirectionResult, "hypotheses">[],
  trainPairs: Record<string, number>,
): Pick<EvalReport, "averages" | "highResource" | "decodeTokensPerSecond"> {
  type D = Omit<DirectionResult, "hypotheses">;
  const langOf = (d: D) => (d.srcLang === "en" ? d.tgtLang : d.srcLang);
  const langs = [...new Set(directions.map(langOf))];
  const ranked = langs.slice().sort((a, b) => (trainPairs[b] ?? 0) - (trainPairs[a] ?? 0));
  const highResource = ranked.slice(0, Math.ceil(ranked.length / 2));
  const avg = (ds: D[]): Average => ({
    bleu: mean(ds.map((d) => d.bleu)),
    chrf: mean(ds.map((d) => d.chrf)),
    directions: ds.length,
  });
  const tokens = directions.reduce((n, d) => n + d.outputTokens, 0);
  const secs = directions.reduce((n, d) => n + d.seconds, 0);
  return {
    averages: {
      all: avg([...directions]),
      "en-xx": avg(directions.filter((d) => d.srcLang === "en")),
      "xx-en": avg(directions.filter((d) => d.tgtLang === "en")),
      high: avg(directions.filter((d) => highResource.includes(langOf(d)))),
      low: avg(directions.filter((d) => !highResource.includes(langOf(d)))),
    },
    highResource,
    decodeTokensPerSecond: tokens / Math.max(1e-9, secs),
  };
}
