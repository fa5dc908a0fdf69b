import { Rng } from "@polymoe/routers";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { decode, greedyDecode, type ModelBatch, type ModelConfigInput, Transformer } from "../src/index.js";
import { assertNoLeak, env, onBackend, uniq } from "./helpers.js";

const V = 7;
const BOS = 1;
const EOS = 2;
const cfg: ModelConfigInput = {
  vocabSize: V,
  dModel: 8,
  heads: 2,
  dFF: 16,
  encoderLayers: 1,
  decoderLayers: 2,
  maxLength: 16,
  dropout: 0,
  moe: { decoder: { numExperts: 3, router: { type: "task", k: 2, numTasks: 2 } } },
};

function sources(rows: number[][], lang: number[]) {
  const B = rows.length;
  const S = Math.max(...rows.map((r) => r.length));
  const src = new Int32Array(B * S);
  const srcMask = new Uint8Array(B * S);
  rows.forEach((r, b) => {
    r.forEach((t, i) => {
      src[b * S + i] = t;
      srcMask[b * S + i] = 1;
    });
  });
  return { batch: B, srcLen: S, src, srcMask, taskIds: { "target-language": Int32Array.from(lang) } };
}

/** Sum of log p(tokens..., eos | source) by teacher forcing (one sentence). */
function sequenceLogProb(
  model: Transformer,
  src: ReturnType<typeof sources>,
  b: number,
  tokens: number[],
  withEos: boolean,
): number {
  const S = src.srcLen;
  const one = {
    batch: 1,
    srcLen: S,
    src: src.src.slice(b * S, (b + 1) * S),
    srcMask: src.srcMask.slice(b * S, (b + 1) * S),
    taskIds: { "target-language": src.taskIds["target-language"].slice(b, b + 1) },
  };
  const tin = [BOS, ...tokens];
  const tout = withEos ? [...tokens, EOS] : tokens;
  const batch: ModelBatch = {
    ...one,
    tgtLen: tout.length,
    tgtIn: Int32Array.from(tin.slice(0, tout.length)),
    tgtMask: new Uint8Array(tout.length).fill(1),
  };
  return tf.tidy(() => {
    const lp = tf.logSoftmax(model.forward(batch, { training: false, rng: new Rng(1) }).logits).dataSync();
    return tout.reduce((s, t, i) => s + (lp[i * V + t] as number), 0);
  });
}

/**
 * Greedy reference for sentence b by full forward passes: starting from
 * `prefix`, append the argmax of the next-token logits until eos or `maxTokens`
 * tokens (prefix included). Returns the tokens and whether eos ended them.
 */
function argmaxContinuation(
  model: Transformer,
  src: ReturnType<typeof sources>,
  b: number,
  prefix: number[],
  maxTokens: number,
): { seq: number[]; ended: boolean } {
  const S = src.srcLen;
  const seq = [...prefix];
  while (seq.length < maxTokens) {
    const batch: ModelBatch = {
      batch: 1,
      srcLen: S,
      src: src.src.slice(b * S, (b + 1) * S),
      srcMask: src.srcMask.slice(b * S, (b + 1) * S),
      taskIds: { "target-language": src.taskIds["target-language"].slice(b, b + 1) },
      tgtLen: seq.length + 1,
      tgtIn: Int32Array.from([BOS, ...seq]),
      tgtMask: new Uint8Array(seq.length + 1).fill(1),
    };
    const next = tf.tidy(() => {
      const l = model.forward(batch, { training: false, rng: new Rng(1) }).logits.dataSync();
      const row = l.subarray(seq.length * V, (seq.length + 1) * V);
      return row.indexOf(Math.max(...row));
    });
    if (next === EOS) return { seq, ended: true };
    seq.push(next);
  }
  return { seq, ended: false };
}

describe.each(env.backends)("decoding on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);

  it("greedy decoding equals step-by-step argmax of teacher-forced logits", () =>
    run(() => {
      const model = new Transformer(cfg, { seed: 3, namespace: uniq("greedy") });
      const src = sources(
        [
          [3, 4, 5],
          [6, 3],
        ],
        [0, 1],
      );
      const out = assertNoLeak(() =>
        greedyDecode(model, src, { bos: BOS, eos: EOS, maxLenRatio: 1, maxLenOffset: 3 }),
      );
      for (let b = 0; b < 2; b++) {
        const { seq } = argmaxContinuation(model, src, b, [], 6);
        const maxOut = src.srcMask.slice(b * src.srcLen, (b + 1) * src.srcLen).reduce((a, m) => a + m, 0) + 3;
        expect(Array.from(out[b]!.tokens)).toEqual(seq.slice(0, maxOut));
      }
      model.dispose();
    }));

  it("beam size 1 is greedy; a beam wide enough to be exhaustive finds the best-scoring sequence", () =>
    run(() => {
      const model = new Transformer(cfg, { seed: 5, namespace: uniq("beam") });
      const src = sources([[3, 4]], [1]);
      const opts = { bos: BOS, eos: EOS, maxLenRatio: 0, maxLenOffset: 2, lengthPenalty: 1 };
      const g = greedyDecode(model, src, opts)[0]!;
      const b1 = decode(model, src, { ...opts, beamSize: 1 })[0]!;
      expect(Array.from(b1.tokens)).toEqual(Array.from(g.tokens));
      // Exhaustive over everything decoding can emit with at most 2 output tokens:
      // 0..1 tokens then eos, or exactly 2 tokens cut at the length limit.
      let best = { score: Number.NEGATIVE_INFINITY, tokens: [] as number[] };
      const consider = (toks: number[], withEos: boolean) => {
        const lp = sequenceLogProb(model, src, 0, toks, withEos);
        const score = lp / (toks.length + (withEos ? 1 : 0));
        if (score > best.score) best = { score, tokens: toks };
      };
      const all = (len: number): number[][] =>
        len === 0
          ? [[]]
          : all(len - 1).flatMap((p) =>
              Array.from({ length: V }, (_, v) => [...p, v]).filter((s) => !s.includes(EOS)),
            );
      for (let len = 0; len <= 1; len++) for (const s of all(len)) consider(s, true);
      for (const s of all(2)) consider(s, false);
      const wide = assertNoLeak(() => decode(model, src, { ...opts, beamSize: 49 })[0]!);
      expect(Array.from(wide.tokens)).toEqual(best.tokens);
      expect(wide.score).toBeCloseTo(best.score, 4);
      model.dispose();
    }));

  it("minLength bars eos until that many tokens; with maxLenRatio 0 every output has exactly that length", () =>
    run(() => {
      const model = new Transformer(cfg, { seed: 7, namespace: uniq("minlen") });
      const src = sources(
        [
          [3, 4, 5],
          [4, 4],
        ],
        [0, 1],
      );
      for (const beamSize of [1, 3]) {
        const out = decode(model, src, {
          bos: BOS,
          eos: EOS,
          beamSize,
          minLength: 6,
          maxLenRatio: 0,
          maxLenOffset: 6,
        });
        expect(out.map((h) => h.tokens.length)).toEqual([6, 6]);
        for (const h of out) expect(Array.from(h.tokens)).not.toContain(EOS);
      }
      // minLength alone: outputs may run longer, never shorter.
      const free = decode(model, src, { bos: BOS, eos: EOS, minLength: 4 });
      for (const h of free) expect(h.tokens.length).toBeGreaterThanOrEqual(4);
      model.dispose();
    }));

  it("a prefix on some sentences: forced tokens first, then the argmax of teacher-forced logits; log-probs match", () =>
    run(() => {
      const model = new Transformer(cfg, { seed: 9, namespace: uniq("mixedprefix") });
      const src = sources(
        [
          [3, 4, 5],
          [6, 3, 4],
        ],
        [0, 1],
      );
      const prefixes = [Int32Array.from([6, 6]), new Int32Array(0)];
      const out = assertNoLeak(() =>
        decode(model, src, { bos: BOS, eos: EOS, prefix: prefixes, maxLenRatio: 0, maxLenOffset: 4 }),
      );
      for (let b = 0; b < 2; b++) {
        const pre = Array.from(prefixes[b]!);
        const { seq, ended } = argmaxContinuation(model, src, b, pre, pre.length + 4);
        expect(Array.from(out[b]!.tokens)).toEqual(seq.slice(pre.length));
        expect(out[b]!.logProb).toBeCloseTo(sequenceLogProb(model, src, b, seq, ended), 4);
      }
      model.dispose();
    }));

  it("forces a prefix and strips it from the output", () =>
    run(() => {
      const model = new Transformer(cfg, { seed: 7, namespace: uniq("prefix") });
      const src = sources([[3, 4, 5]], [0]);
      const h = decode(model, src, {
        bos: BOS,
        eos: EOS,
        beamSize: 2,
        prefix: [Int32Array.from([6, 6])],
        maxLenOffset: 2,
      })[0]!;
      const free = decode(model, src, { bos: BOS, eos: EOS, beamSize: 2, maxLenOffset: 2 })[0]!;
      expect(h.logProb).toBeLessThanOrEqual(free.logProb + 1e-6 + 50);
      // maxLen = ceil(ratio * source length + offset) output tokens, prefix excluded.
      expect(h.tokens.length).toBeLessThanOrEqual(Math.ceil(3 * 1.5 + 2));
      expect(() => decode(model, src, { bos: BOS, eos: EOS, beamSize: 0 })).toThrow(
        /beamSize must be >= 1, got 0/,
      );
      model.dispose();
    }));
});
