import { encodeSource, type TaskSpace, type Tokenizer } from "@polymoe/data";
import type { TokenizerName } from "@polymoe/metrics";
import {
  type DecodeOptions,
  decode,
  type Hypothesis,
  type SourceBatch,
  type Transformer,
} from "@polymoe/model";

export interface TranslateOptions {
  /** 1 = greedy. */
  beamSize?: number;
  lengthPenalty?: number;
  maxLenRatio?: number;
  maxLenOffset?: number;
  /** Fewest output tokens before </s> may end a hypothesis (see DecodeOptions.minLength). */
  minLength?: number;
  /** Sentences decoded together (sorted by length first, order restored after). */
  batchSize?: number;
  /** Source tokens kept, tag and </s> included (as in training). */
  maxSourceLength?: number;
}

/**
 * Translates raw sentences from srcLang into tgtLang: each source is encoded
 * exactly as training encodes it (<2tgt> tokens </s>), decoding starts at
 * <s> with the task ids of the direction, and outputs are detokenized.
 */
export function translate(
  model: Transformer,
  tokenizer: Tokenizer,
  space: TaskSpace,
  sources: readonly string[],
  srcLang: string,
  tgtLang: string,
  opts: TranslateOptions = {},
): string[] {
  const lang = space.languages.indexOf(tgtLang);
  if (lang < 0)
    throw new Error(
      `translate: target language '${tgtLang}' is not in the model's task space (${space.languages.join(", ")})`,
    );
  const pair = Math.max(0, space.pairs.indexOf(`${srcLang}-${tgtLang}`));
  const maxSrc = Math.min(opts.maxSourceLength ?? 128, model.config.maxLength);
  const encoded = sources.map((s) => encodeSource(tokenizer, s, tgtLang, maxSrc));
  const decodeOpts: DecodeOptions = {
    bos: tokenizer.bosId,
    eos: tokenizer.eosId,
    beamSize: opts.beamSize ?? 1,
    lengthPenalty: opts.lengthPenalty ?? 1,
    maxLenRatio: opts.maxLenRatio ?? 1.5,
    maxLenOffset: opts.maxLenOffset ?? 10,
    ...(opts.minLength !== undefined ? { minLength: opts.minLength } : {}),
  };
  const hyps = decodeInBatches(model, encoded, {
    batchSize: opts.batchSize ?? 32,
    lang,
    pair,
    padId: tokenizer.padId,
    decode: decodeOpts,
  });
  return hyps.map((h) => tokenizer.decode(h.tokens));
}

/**
 * Decodes encoded sources (<2tgt> tokens </s>) of one direction, sorted by
 * length into batches of `batchSize` sentences (less padding), every one with
 * the direction's task ids; calls `onBatch(sentences)` after each batch.
 * Returns the best hypothesis per source, in input order.
 */
export function decodeInBatches(
  model: Transformer,
  encoded: readonly Int32Array[],
  o: {
    batchSize: number;
    lang: number;
    pair: number;
    padId: number;
    decode: DecodeOptions;
    onBatch?: (sentences: number) => void;
  },
): Hypothesis[] {
  const order = encoded
    .map((_, i) => i)
    .sort((a, b) => (encoded[a] as Int32Array).length - (encoded[b] as Int32Array).length);
  const out = new Array<Hypothesis>(encoded.length);
  for (let i = 0; i < order.length; i += o.batchSize) {
    const idx = order.slice(i, i + o.batchSize);
    const B = idx.length;
    const S = Math.max(...idx.map((j) => (encoded[j] as Int32Array).length));
    const batch: SourceBatch = {
      batch: B,
      srcLen: S,
      src: new Int32Array(B * S).fill(o.padId),
      srcMask: new Uint8Array(B * S),
      taskIds: {
        "target-language": new Int32Array(B).fill(o.lang),
        "language-pair": new Int32Array(B).fill(o.pair),
        "task-type": new Int32Array(B),
      },
    };
    idx.forEach((j, r) => {
      const e = encoded[j] as Int32Array;
      batch.src.set(e, r * S);
      batch.srcMask.fill(1, r * S, r * S + e.length);
    });
    const hyps = decode(model, batch, o.decode);
    idx.forEach((j, r) => {
      out[j] = hyps[r] as Hypothesis;
    });
    o.onBatch?.(B);
  }
  return out;
}

/**
 * The BLEU tokenizer PolyMoE uses by default for a target language: sacreBLEU's
 * `zh` for Chinese, character-level for languages written without spaces
 * (sacreBLEU would use MeCab for Japanese, which PolyMoE does not ship), `13a`
 * otherwise. Evaluation commands let users override it.
 */
export function bleuTokenizerFor(lang: string): TokenizerName {
  if (lang.startsWith("zh")) return "zh";
  if (["ja", "th", "lo", "km", "my", "bo", "dz"].includes(lang.split(/[_-]/)[0] as string)) return "char";
  return "13a";
}
