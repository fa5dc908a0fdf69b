import { encodeSource, type TaskSpace, type Tokenizer } from "@polymoe/data";
import type { TrainBatch } from "@polymoe/train";

/** Raw sentences of one direction (an EvalSet or a part of one). */
export interface EvalPairs {
  pair: string;
  srcLang: string;
  tgtLang: string;
  sources: readonly string[];
  references: readonly string[];
}

/**
 * Encodes evaluation pairs into padded batches laid out as training batches:
 * src = <2tgt> tokens </s>, tgtIn = <s> tokens, tgtOut = tokens </s>, with
 * the examples' task ids from `space`.
 */
export function encodeEvalBatches(
  pairs: readonly EvalPairs[],
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
