// The dev set of a training run: dev loss over encoded dev pairs (both
// directions of every language), computed the way training computes its loss.
import type { Corpus, TaskSpace, Tokenizer } from "@polymoe/data";
import { listEvalSets, loadEvalSet } from "@polymoe/data";
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
