import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import { RoutingError, type TopKGatingOptions, topKGating } from "../src/index.js";
import { assertClose, assertNoLeak, ctx, env, onBackend, take } from "./helpers.js";

const opts = (o: Partial<TopKGatingOptions> = {}): TopKGatingOptions => ({
  k: 1,
  softmaxOrder: "before",
  renormalize: true,
  secondExpertSampling: false,
  capacityFactor: 0,
  minCapacity: 0,
  policy: "position",
  ...o,
});

/** Softmax of a row, in float64, for hand-checkable expected weights. */
const sm = (row: number[]) => {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe.each(env.backends)("topKGating on %s", (backend) => {
  const run = <T>(f: () => T) => onBackend(backend, f);

  it("top-1 (Switch), dropless: literal experts, slots, weights and counts", () =>
    run(() => {
      const logits = tf.tensor2d([
        [2, 1, 0],
        [0, 3, 1],
        [5, 0, 0],
        [0, 0, 1],
      ]);
      const r = topKGating(logits, opts(), ctx());
      expect(Array.from(r.expert)).toEqual([0, 1, 0, 2]);
      expect(Array.from(r.slot)).toEqual([0, 0, 1, 0]);
      expect(r.capacity).toBe(2); // dropless: the busiest expert's count
      expect(Array.from(r.pairs.dest)).toEqual([0, 2, 1, 4]);
      expect(Array.from(r.counts)).toEqual([2, 1, 1]);
      assertClose(take(r.combineWeight), [
        sm([2, 1, 0])[0]!,
        sm([0, 3, 1])[1]!,
        sm([5, 0, 0])[0]!,
        sm([0, 0, 1])[2]!,
      ]);
      expect(r.metrics.droppedFraction).toBe(0);
      tf.dispose([logits, r.auxLoss, r.zLoss]);
    }));

  it("top-2 (GShard), capacity 1: first choices before second choices, overflow dropped", () =>
    run(() => {
      const logits = tf.tensor2d([
        [3, 2, 0],
        [3, 0, 2],
        [0, 3, 2],
      ]);
      // capacity = max(1, ceil(0.5 * 3 * 2 / 3)) = 1
      const r = topKGating(logits, opts({ k: 2, capacityFactor: 0.5, minCapacity: 1 }), ctx());
      expect(r.capacity).toBe(1);
      // choices: t0 [0,1], t1 [0,2], t2 [1,2]. First choices in token order: t0->e0 slot0,
      // t1->e0 overflow, t2->e1 slot0; then second choices: t0->e1 overflow, t1->e2 slot0, t2->e2 overflow.
      expect(Array.from(r.expert)).toEqual([0, 1, 0, 2, 1, 2]);
      expect(Array.from(r.slot)).toEqual([0, -1, -1, 0, 0, -1]);
      expect(Array.from(r.pairs.dest)).toEqual([0, -1, -1, 2, 1, -1]);
      expect(Array.from(r.dropped)).toEqual([0, 1, 1, 0, 0, 1]);
      expect(Array.from(r.counts)).toEqual([2, 2, 2]);
      expect(r.metrics.droppedFraction).toBeCloseTo(3 / 6);
      // renormalised over the two chosen, then dropped pairs zeroed
      const p0 = sm([3, 2, 0]);
      const p1 = sm([3, 0, 2]);
      const p2 = sm([0, 3, 2]);
      assertClose(take(r.combineWeight), [
        p0[0]! / (p0[0]! + p0[1]!),
        0,
        0,
        p1[2]! / (p1[0]! + p1[2]!),
        p2[1]! / (p2[1]! + p2[2]!),
        0,
      ]);
      tf.dispose([logits, r.auxLoss, r.zLoss]);
    }));

  it("softmax after top-k: weights are the softmax of the chosen logits", () =>
    run(() => {
      const logits = tf.tensor2d([[1, 4, 2, 3]]);
      const r = topKGating(logits, opts({ k: 3, softmaxOrder: "after" }), ctx());
      expect(Array.from(r.expert)).toEqual([1, 3, 2]);
      assertClose(take(r.combineWeight), sm([4, 3, 2]));
      tf.dispose([logits, r.auxLoss, r.zLoss]);
    }));

  it("ties go to the lower expert index; all tokens on one expert fill slots in order", () =>
    run(() => {
      const logits = tf.zeros([5, 4]) as tf.Tensor2D;
      const r = topKGating(logits, opts({ capacityFactor: 1, minCapacity: 0 }), ctx()); // capacity ceil(5/4) = 2
      expect(Array.from(r.expert)).toEqual([0, 0, 0, 0, 0]);
      expect(Array.from(r.slot)).toEqual([0, 1, -1, -1, -1]);
      expect(r.metrics.unusedExperts).toBe(3);
      expect(r.metrics.unroutedFraction).toBeCloseTo(3 / 5);
      tf.dispose([logits, r.combineWeight, r.auxLoss, r.zLoss]);
    }));

  it("more experts than tokens; minCapacity applies", () =>
    run(() => {
      const logits = tf.tensor2d([
        [0, 0, 0, 0, 0, 0, 9, 0],
        [0, 9, 0, 0, 0, 0, 0, 0],
      ]);
      const r = topKGating(logits, opts({ capacityFactor: 1, minCapacity: 3 }), ctx());
      expect(r.capacity).toBe(3); // ceil(2/8) = 1 < minCapacity
      expect(Array.from(r.pairs.dest)).toEqual([18, 3]);
      tf.dispose([logits, r.combineWeight, r.auxLoss, r.zLoss]);
    }));

  it("padding tokens are not routed, use no capacity and are not in the statistics", () =>
    run(() => {
      const logits = tf.tensor2d([
        [9, 0],
        [9, 0],
        [9, 0],
      ]);
      const padMask = Uint8Array.from([0, 1, 1]);
      const r = topKGating(logits, opts({ capacityFactor: 1, minCapacity: 0 }), ctx({ padMask })); // cap ceil(3/2)=2
      expect(Array.from(r.pairs.dest)).toEqual([-1, 0, 1]);
      expect(Array.from(r.counts)).toEqual([2, 0]);
      expect(r.metrics.tokens).toBe(2);
      expect(take(r.combineWeight)[0]).toBe(0);
      // f = [1, 0]; P_e over the two real tokens = softmax([9, 0])
      assertClose([r.metrics.auxLoss], [2 * sm([9, 0])[0]!], { rtol: 1e-5 });
      tf.dispose([logits, r.auxLoss, r.zLoss]);
    }));

  it("aux loss E * sum f_e P_e and z-loss mean(lse^2): literal values", () =>
    run(() => {
      const rows = [
        [1, 0],
        [0, 2],
        [3, 1],
      ];
      const logits = tf.tensor2d(rows);
      const r = topKGating(logits, opts(), ctx());
      const probs = rows.map(sm);
      const f = [2 / 3, 1 / 3]; // top-1: e0, e1, e0
      const P = [0, 1].map((e) => probs.reduce((s, p) => s + p[e]!, 0) / 3);
      assertClose(take(r.auxLoss), [2 * (f[0]! * P[0]! + f[1]! * P[1]!)], { rtol: 1e-6 });
      const lse = rows.map((row) => Math.log(row.reduce((s, v) => s + Math.exp(v), 0)));
      assertClose(take(r.zLoss), [lse.reduce((s, v) => s + v * v, 0) / 3], { rtol: 1e-6 });
      tf.dispose([logits, r.combineWeight]);
    }));

  it("GShard second-expert sampling drops some second choices in training only", () =>
    run(() => {
      const logits = tf.tensor2d(Array.from({ length: 400 }, () => [4, 0, 0, 0]));
      const train = topKGating(logits, opts({ k: 2, secondExpertSampling: true }), ctx());
      let droppedSecond = 0;
      for (let t = 0; t < 400; t++) droppedSecond += train.dropped[t * 2 + 1] as number;
      const keptRate = 1 - droppedSecond / 400;
      // w1/(w0+w1) = 1/(e^4+1) ~ 0.018; kept with probability 2 * 0.018
      expect(keptRate).toBeGreaterThan(0.01);
      expect(keptRate).toBeLessThan(0.08);
      const evalRun = topKGating(
        logits,
        opts({ k: 2, secondExpertSampling: true }),
        ctx({ training: false }),
      );
      expect(evalRun.dropped.every((d) => d === 0)).toBe(true);
      tf.dispose([logits, train.combineWeight, train.auxLoss, train.zLoss]);
      tf.dispose([evalRun.combineWeight, evalRun.auxLoss, evalRun.zLoss]);
    }));

  it("leaves only the returned tensors behind", () =>
    run(() => {
      const logits = tf.randomNormal([64, 8]) as tf.Tensor2D;
      assertNoLeak(() => {
        const r = topKGating(logits, opts({ k: 2, capacityFactor: 1.25 }), ctx());
        tf.dispose([r.combineWeight, r.auxLoss, r.zLoss]);
      });
      logits.dispose();
    }));

  it("malformed input names the argument, its value and the expectation", () =>
    run(() => {
      const l = tf.zeros([3, 4]) as tf.Tensor2D;
      expect(() => topKGating(l, opts({ k: 5 }), ctx())).toThrow(/k must be an integer in \[1, 4\] .* got 5/);
      expect(() => topKGating(tf.zeros([3]) as never, opts(), ctx())).toThrow(
        /logits must be \[tokens, experts\], got shape \[3\]/,
      );
      expect(() => topKGating(l, opts(), ctx({ padMask: new Uint8Array(2) }))).toThrow(
        /padMask has 2 entries, expected one per token \(3\)/,
      );
      const bad = tf.tensor2d([
        [0, 0],
        [Number.NaN, 0],
      ]);
      try {
        topKGating(bad, opts(), ctx());
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(RoutingError);
        expect((e as RoutingError).code).toBe("NON_FINITE");
        expect((e as Error).message).toMatch(/row 1, expert 0 is NaN/);
      }
      tf.dispose([l, bad]);
    }));
});
