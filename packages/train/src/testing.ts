// Test support for code built on the trainer (exported as @polymoe/train/testing):
// a small deterministic batch source other packages' tests can train on.
import type { BatchSource, TrainBatch } from "./trainer.js";

/** Vocabulary size of SyntheticSource's token ids. */
export const VOCAB = 24;
/** Special token ids of SyntheticSource batches. */
export const PAD = 0;
export const BOS = 1;
export const EOS = 2;

/**
 * A deterministic multitask source: three "target languages" that transform
 * the source differently (0: copy, 1: reverse, 2: each token + 1), announced
 * by a tag token first in the source (3, 4, 5) as the real pipeline does, with
 * variable lengths and padding. Its state is the number of batches drawn.
 */
export class SyntheticSource implements BatchSource {
  position = 0;

  constructor(
    readonly batch = 8,
    readonly maxLen = 7,
    readonly seed = 1,
  ) {}

  /** Batch number `pos` of the stream (a pure function of seed and pos). */
  make(pos: number): TrainBatch {
    let s = (this.seed * 7919 + pos * 104729) >>> 0 || 1;
    const rnd = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 4294967296;
    };
    const B = this.batch;
    const S = this.maxLen + 2;
    const T = this.maxLen + 1;
    const srcMask = new Float32Array(B * S);
    const tgtMask = new Float32Array(B * T);
    const b: TrainBatch = {
      epoch: 0,
      size: B,
      srcLen: S,
      tgtLen: T,
      srcIds: new Int32Array(B * S),
      srcMask,
      tgtInIds: new Int32Array(B * T),
      tgtOutIds: new Int32Array(B * T),
      tgtMask,
      targetLangIds: new Int32Array(B),
      pairIds: new Int32Array(B),
      taskTypeIds: new Int32Array(B),
      srcTokens: 0,
      tgtTokens: 0,
    };
    for (let i = 0; i < B; i++) {
      const lang = Math.floor(rnd() * 3);
      const len = 2 + Math.floor(rnd() * (this.maxLen - 2));
      const toks = Array.from({ length: len }, () => 6 + Math.floor(rnd() * (VOCAB - 7)));
      const out = lang === 0 ? toks : lang === 1 ? toks.slice().reverse() : toks.map((t) => t + 1);
      b.targetLangIds[i] = lang;
      b.pairIds[i] = lang;
      b.srcIds[i * S] = 3 + lang; // the target-language tag
      for (let j = 0; j < len; j++) b.srcIds[i * S + 1 + j] = toks[j] as number;
      b.srcIds[i * S + len + 1] = EOS;
      for (let j = 0; j <= len + 1; j++) srcMask[i * S + j] = 1;
      b.tgtInIds[i * T] = BOS;
      for (let j = 0; j < len; j++) {
        b.tgtInIds[i * T + j + 1] = out[j] as number;
        b.tgtOutIds[i * T + j] = out[j] as number;
      }
      b.tgtOutIds[i * T + len] = EOS;
      for (let j = 0; j <= len; j++) tgtMask[i * T + j] = 1;
      b.srcTokens += len + 2;
      b.tgtTokens += len + 1;
    }
    return b;
  }

  next(): IteratorResult<TrainBatch> {
    return { done: false, value: this.make(this.position++) };
  }

  state(): { position: number } {
    return { position: this.position };
  }

  restore(state: { position: number }): void {
    this.position = state.position;
  }

  /** Fixed dev batches (drawn from a different seed). */
  devBatches(n = 2): TrainBatch[] {
    const dev = new SyntheticSource(this.batch, this.maxLen, this.seed + 1000);
    return Array.from({ length: n }, () => dev.next().value as TrainBatch);
  }
}
