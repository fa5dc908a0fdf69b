import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { allocateQuotas, DataError, noiseTokens, temperatureProbabilities } from "../src/index.js";
import { mulberry32 } from "../src/util/hash.js";

describe("temperature sampling", () => {
  it("matches p_l ∝ n_l^(1/T) with literal values", () => {
    const p = temperatureProbabilities([100, 10000], 5);
    // 100^0.2 = 2.51189, 10000^0.2 = 6.30957
    expect(p[0]).toBeCloseTo(2.51189 / (2.51189 + 6.30957), 5);
    expect(p[1]).toBeCloseTo(0.715253, 5);
    expect(Array.from(temperatureProbabilities([1, 3], 1))).toEqual([0.25, 0.75]);
    const flat = temperatureProbabilities([1, 1e6], 1e9);
    expect(flat[0]).toBeCloseTo(0.5, 6);
    expect(Array.from(temperatureProbabilities([0, 4], 2))).toEqual([0, 1]);
    expect(() => temperatureProbabilities([1], 0)).toThrow(DataError);
    expect(() => temperatureProbabilities([0, 0], 5)).toThrow(/every dataset is empty/);
  });

  it("quotas sum exactly and stay within one of the expected counts (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1e6 }), { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 0, max: 1e5 }),
        (counts, total) => {
          fc.pre(counts.some((c) => c > 0));
          const p = temperatureProbabilities(counts, 5);
          const q = allocateQuotas(p, total);
          expect(q.reduce((a, b) => a + b, 0)).toBe(total);
          q.forEach((k, i) => {
            expect(Math.abs(k - p[i]! * total)).toBeLessThan(1 + 1e-9);
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("denoising noise", () => {
  // ids: word starts are even ids >= 100; continuation pieces are odd.
  const isStart = (id: number) => id % 2 === 0;
  const words = (n: number) => Array.from({ length: n }, (_, i) => [100 + 2 * i, 201 + 2 * i]).flat();
  const opts = { maskRatio: 0.35, poissonLambda: 3.5, wordDropout: 0.1, shuffleWindow: 3 };

  it("is deterministic for a seed, never longer than its input, and keeps words whole", () => {
    const ids = words(40);
    const a = noiseTokens(ids, isStart, 4, mulberry32(9), opts);
    expect(noiseTokens(ids, isStart, 4, mulberry32(9), opts)).toEqual(a);
    expect(noiseTokens(ids, isStart, 4, mulberry32(10), opts)).not.toEqual(a);
    expect(a.length).toBeLessThanOrEqual(ids.length);
    for (let i = 0; i < a.length; i++) if (a[i]! >= 100 && a[i]! < 200) expect(a[i + 1]).toBe(a[i]! + 101);
  });

  it("masks about maskRatio of the words in spans (one <mask> per span) and shuffles locally", () => {
    let maskedWords = 0;
    let total = 0;
    let masks = 0;
    const rng = mulberry32(1);
    for (let t = 0; t < 200; t++) {
      const out = noiseTokens(words(50), isStart, 4, rng, { ...opts, wordDropout: 0, shuffleWindow: 0 });
      const kept = out.filter((x) => x >= 100 && x < 200).length;
      maskedWords += 50 - kept;
      masks += out.filter((x) => x === 4).length;
      total += 50;
      // without shuffling, surviving words stay in order
      const starts = out.filter((x) => x >= 100 && x < 200);
      expect([...starts].sort((x, y) => x - y)).toEqual(starts);
    }
    expect(maskedWords / total).toBe(18 / 50); // round(0.35 × 50) words, every time
    expect(masks).toBeLessThan(maskedWords / 2); // spans average > 2 words
    const shuffled = noiseTokens(words(30), isStart, 4, mulberry32(3), {
      ...opts,
      maskRatio: 0,
      wordDropout: 0,
    });
    const pos = shuffled.filter(isStart).map((id) => (id - 100) / 2);
    expect(pos).not.toEqual([...pos].sort((x, y) => x - y));
    pos.forEach((w, i) => {
      expect(Math.abs(w - i)).toBeLessThanOrEqual(3);
    });
  });

  it("drops words with probability wordDropout but never returns nothing", () => {
    const out = noiseTokens(words(1000), isStart, 4, mulberry32(5), {
      ...opts,
      maskRatio: 0,
      shuffleWindow: 0,
      wordDropout: 0.2,
    });
    expect(out.filter(isStart).length / 1000).toBeCloseTo(0.8, 1);
    expect(
      noiseTokens(words(1), isStart, 4, mulberry32(1), { ...opts, wordDropout: 0.99 }).length,
    ).toBeGreaterThan(0);
    expect(noiseTokens([], isStart, 4, mulberry32(1), opts)).toEqual([]);
  });
});
