// The dev set of a training run: dev loss over encoded dev pairs (both
// directions of every language), computed the way training computes its loss.
import type { Corpus, TaskSpace, Tokenizer } from "@polymoe/data";
import { encodeSource, listEvalSets, loadEvalSet } from "@polymoe/data";
import { bleuTokenizerFor, translate } from "@polymoe/eval";
import { corpusBleu } from "@polymoe/metrics";
import type { Transformer } from "@polymoe/model";
import type { Rng } from "@polymoe/routers";
import { type DevResult, evaluateLoss, type TrainBatch } from "@polymoe/train";

/** Raw sentences of one dev direction. */
export interface DevPair {
  pair: string;
  srcLang: string;
  tgtLang: string;
  sources: string[];
  references: string[];
}

/** The first `perPair` sentences of every direction of `split`. */
export async function loadDevPairs(corpus: Corpus, split: string, perPair: number): Promise<DevPair[]> {
  const ids = listEvalSets(corpus).filter((s) => s.split === split);
  const out: DevPair[] = [];
  for (const id of ids) {
    const set = await loadEvalSet(corpus, id.split, id.pair);
    out.push({
      pair: set.pair,
      srcLang: set.srcLang,
      tgtLang: set.tgtLang,
      sources: set.sources.slice(0, perPair),
      references: set.references.slice(0, perPair),
    });
  }
  return out;
}

/**
 * Encodes dev pairs into padded batches laid out as training batches:
 * src = <2tgt> tokens </s>, tgtIn = <s> tokens, tgtOut = tokens </s>, with
 * the examples' task ids from `space`.
 */
export function devBatches(
  pairs: readonly DevPair[],
  tok: Tokenizer,
  space: TaskSpace,
  opts: { batchSize: number; maxSourceLength: number; maxTargetLength: number },
): TrainBatch[] {
  type Ex = { src: Int32Array; tgt: Int32Array; lang: number; pair: number };
  const examples: Ex[] = [];
  for (const p of pairs) {
    const lang = space.languages.indexOf(p.tgtLang);
    const pair = space.pairs.indexOf(p.pair);
    if (lang < 0 || pair < 0) continue;
    p.sources.forEach((s, i) => {
      const src = encodeSource(tok, s, p.tgtLang, opts.maxSourceLength);
      const tgt = tok.encode(p.references[i] as string).subarray(0, opts.maxTargetLength - 1);
      examples.push({ src, tgt, lang, pair });
    });
  }
  const batches: TrainBatch[] = [];
  for (let i = 0; i < examples.length; i += opts.batchSize) {
    const chunk = examples.slice(i, i + opts.batchSize);
    const B = chunk.length;
    const S = Math.max(...chunk.map((e) => e.src.length));
    const T = Math.max(...chunk.map((e) => e.tgt.length + 1));
    const b: TrainBatch = {
      size: B,
      srcLen: S,
      tgtLen: T,
      srcIds: new Int32Array(B * S),
      srcMask: new Float32Array(B * S),
      tgtInIds: new Int32Array(B * T),
      tgtOutIds: new Int32Array(B * T),
      tgtMask: new Float32Array(B * T),
      targetLangIds: Int32Array.from(chunk, (e) => e.lang),
      pairIds: Int32Array.from(chunk, (e) => e.pair),
      taskTypeIds: new Int32Array(B),
      srcTokens: 0,
      tgtTokens: 0,
    };
    const srcMask = b.srcMask as Float32Array;
    const tgtMask = b.tgtMask as Float32Array;
    chunk.forEach((e, r) => {
      b.srcIds.set(e.src, r * S);
      srcMask.fill(1, r * S, r * S + e.src.length);
      b.tgtInIds[r * T] = tok.bosId;
      b.tgtInIds.set(e.tgt, r * T + 1);
      b.tgtOutIds.set(e.tgt, r * T);
      b.tgtOutIds[r * T + e.tgt.length] = tok.eosId;
      tgtMask.fill(1, r * T, r * T + e.tgt.length + 1);
      b.srcTokens += e.src.length;
      b.tgtTokens += e.tgt.length + 1;
    });
    batches.push(b);
  }
  return batches;
}

/** Dev loss (label-smoothed and plain NLL) per target token. */
export function devLoss(
  model: Transformer,
  batches: readonly TrainBatch[],
  labelSmoothing: number,
  rng: Rng,
): DevResult {
  return evaluateLoss(model, batches, labelSmoothing, rng);
}

/**
 * Corpus BLEU per direction of the first `perPair` sentences, decoded with the
 * model (greedy unless beamSize > 1), and their mean over directions.
 */
export function devBleu(
  model: Transformer,
  pairs: readonly DevPair[],
  tok: Tokenizer,
  space: TaskSpace,
  opts: { perPair: number; beamSize: number; batchSize: number; maxSourceLength: number },
): { bleu: number; perPair: Record<string, number> } {
  const perPair: Record<string, number> = {};
  for (const p of pairs) {
    const sources = p.sources.slice(0, opts.perPair);
    if (sources.length === 0) continue;
    const hyps = translate(model, tok, space, sources, p.srcLang, p.tgtLang, {
      beamSize: opts.beamSize,
      batchSize: opts.batchSize,
      maxSourceLength: opts.maxSourceLength,
    });
    perPair[p.pair] = corpusBleu(hyps, [p.references.slice(0, opts.perPair)], {
      tokenize: bleuTokenizerFor(p.tgtLang),
    }).score;
  }
  const values = Object.values(perPair);
  return { bleu: values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0, perPair };
}
