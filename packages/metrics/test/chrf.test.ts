// chrF and chrF++ on tiny inputs; the per-order [hyp, ref, match] statistics are
// counted by hand in the comments, the scores are the closed forms beside them.
import { describe, expect, it } from "vitest";

import {
  chrfWords,
  computeChrf,
  corpusChrf,
  formatScore,
  formatSignature,
  METRICS_VERSION,
  sentenceChrf,
} from "../src/index.js";

const close = (actual: number, expected: number) => expect(actual).toBeCloseTo(expected, 10);
const zeros = (orders: number) => new Array(3 * orders).fill(0);

describe("chrF", () => {
  it("averages precision and recall over the orders both sides have", () => {
    // abc vs abd: order 1 [3,3,2], order 2 [2,2,1], order 3 [1,1,0], orders 4-6 empty.
    // P = R = (2/3 + 1/2 + 0) / 3, and F-beta of P = R is P.
    const s = corpusChrf(["abc"], [["abd"]]);
    expect(s.statistics).toEqual([3, 3, 2, 2, 2, 1, 1, 1, 0, ...zeros(3)]);
    close(s.score, (100 * (2 / 3 + 1 / 2)) / 3);
    expect(s.name).toBe("chrF2");
    expect(formatScore(s)).toBe("chrF2 = 38.89");
  });

  it("weighs recall beta^2 times precision", () => {
    // aab vs ab: order 1 [3,2,2] (a clipped to 1), order 2 [2,1,1] (aa, ab vs ab),
    // order 3: the reference has no 3-gram, so the hypothesis count is zeroed: [0,0,0].
    // P = (2/3 + 1/2)/2 = 7/12, R = 1 -> chrF2 = 5PR/(4P+R) = 0.875, chrF1 = 2PR/(P+R).
    const s = corpusChrf(["aab"], [["ab"]]);
    expect(s.statistics.slice(0, 9)).toEqual([3, 2, 2, 2, 1, 1, 0, 0, 0]);
    close(s.score, 87.5);
    close(corpusChrf(["aab"], [["ab"]], { beta: 1 }).score, (100 * 2 * (7 / 12)) / (7 / 12 + 1));
    expect(corpusChrf(["aab"], [["ab"]], { beta: 1 }).name).toBe("chrF1");
  });

  it("ignores whitespace in character n-grams unless asked to keep it", () => {
    close(corpusChrf(["a b c"], [["abc"]]).score, 100);
    close(corpusChrf(["a\u3000b\u0085c\u001c"], [["abc"]]).score, 100);
    // With whitespace kept: "a b" vs "ab": order 1 [3,2,2], order 2 [2,1,0], order 3 [1,0,0] -> zeroed.
    // P = (2/3 + 0)/2 = 1/3, R = (1 + 0)/2 = 1/2 -> 5PR/(4P+R)
    const P = 1 / 3;
    const R = 1 / 2;
    close(corpusChrf(["a b"], [["ab"]], { whitespace: true }).score, (100 * 5 * P * R) / (4 * P + R));
  });

  it("counts code points, not UTF-16 units", () => {
    // 😀 is one character: 😀x vs 😀y -> order 1 [2,2,1], order 2 [1,1,0] -> P = R = 1/4.
    close(corpusChrf(["😀x"], [["😀y"]]).score, 25);
  });

  it("is 0 for empty hypotheses or references", () => {
    expect(corpusChrf([""], [["abc"]]).score).toBe(0);
    expect(corpusChrf(["abc"], [[""]]).score).toBe(0);
    expect(corpusChrf([""], [[""]]).score).toBe(0);
    expect(corpusChrf(["   "], [["\t"]]).score).toBe(0);
    expect(corpusChrf(["abc"], [[""]]).statistics).toEqual(zeros(6)); // hyp counts zeroed too
    expect(formatScore(corpusChrf([""], [[""]]))).toBe("chrF2 = 0.00");
  });

  it("is case-sensitive unless lowercase is set", () => {
    expect(corpusChrf(["ABC"], [["abc"]]).score).toBe(0);
    close(corpusChrf(["ABC"], [["abc"]], { lowercase: true }).score, 100);
  });

  it("pools statistics over the corpus", () => {
    // seg 1: ab = ab -> [2,2,2], [1,1,1]; seg 2: cde vs ef -> [3,2,1], [2,1,0], order 3 zeroed.
    // Sum: order 1 [5,4,3], order 2 [3,2,1]: P = (3/5 + 1/3)/2 = 7/15, R = (3/4 + 1/2)/2 = 5/8.
    const s = corpusChrf(["ab", "cde"], [["ab", "ef"]]);
    expect(s.statistics.slice(0, 6)).toEqual([5, 4, 3, 3, 2, 1]);
    const P = 7 / 15;
    const R = 5 / 8;
    close(s.score, (100 * 5 * P * R) / (4 * P + R));
    expect(formatScore(s)).toBe("chrF2 = 58.53");
  });

  it("keeps, per segment, the statistics of the best reference (the first on a tie)", () => {
    close(corpusChrf(["abc"], [["xyz"], ["abc"]]).score, 100);
    // Both references score 0 against "q": the first one's statistics are kept.
    const s = corpusChrf(["q"], [["xy"], ["abcd"]]);
    expect(s.statistics.slice(0, 3)).toEqual([1, 2, 0]);
    expect(formatSignature(s.signature)).toMatch(/^nrefs:2\|/);
  });

  it("with epsilon smoothing averages per-order F-scores over all orders", () => {
    // abc vs abd: F per order 2/3, 1/2, 0 (+1e-16), and 1e-16 for each empty order.
    close(corpusChrf(["abc"], [["abd"]], { epsSmoothing: true }).score, (100 * (2 / 3 + 1 / 2)) / 6);
  });
});

describe("chrF++", () => {
  it("adds word unigrams and bigrams after splitting punctuation off word edges", () => {
    // "the cat sat." -> words [the, cat, sat, .]; identical characters and words: 100.
    close(corpusChrf(["the cat sat."], [["the cat sat ."]], { wordOrder: 2 }).score, 100);
    // ab cd vs cd ab: char orders 1-4: [4,4,4], [3,3,2], [2,2,0], [1,1,0];
    // word 1-grams [2,2,2], word 2-grams [1,1,0].
    const plain = corpusChrf(["ab cd"], [["cd ab"]]);
    close(plain.score, (100 * (1 + 2 / 3)) / 4);
    const pp = corpusChrf(["ab cd"], [["cd ab"]], { wordOrder: 2 });
    expect(pp.statistics.slice(18)).toEqual([2, 2, 2, 1, 1, 0]);
    close(pp.score, (100 * (1 + 2 / 3 + 1)) / 6);
    expect(pp.name).toBe("chrF2++");
    expect(formatScore(pp)).toBe("chrF2++ = 44.44");
    expect(formatSignature(pp.signature)).toBe(
      `nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|impl:polymoe-metrics-${METRICS_VERSION}|compat:sacrebleu-2.6.0`,
    );
    expect(formatSignature(pp.signature, { short: true })).toBe(
      `#:1|c:mixed|e:yes|nc:6|nw:2|s:no|impl:polymoe-metrics-${METRICS_VERSION}|compat:sacrebleu-2.6.0`,
    );
  });

  it.each([
    ["(hi)", ["(hi", ")"]],
    ['"hi', ['"', "hi"]],
    ["...", ["..", "."]],
    ["a", ["a"]],
    [".", ["."]],
    ["¿qué?", ["¿qué", "?"]],
    ["«hi»", ["«hi»"]],
    ["'s", ["'", "s"]],
    ["don't", ["don't"]],
    ["😀.", ["😀", "."]],
    ["😀", ["😀"]],
    ["1,000.5", ["1,000.5"]],
    ["x\u3000y\u00a0z", ["x", "y", "z"]],
    ["  ", []],
  ])("chrfWords(%j) = %j", (input, expected) => {
    expect(chrfWords(input)).toEqual(expected);
  });

  it("accepts any word order, chrF+ included", () => {
    expect(corpusChrf(["a b"], [["a b"]], { wordOrder: 1 }).name).toBe("chrF2+");
    close(corpusChrf(["a b"], [["a b"]], { charOrder: 0, wordOrder: 2 }).score, 100);
  });
});

describe("sentence chrF and computeChrf", () => {
  it("sentenceChrf equals the one-segment corpus score", () => {
    close(sentenceChrf("aab", ["ab"]).score, 87.5);
    close(sentenceChrf("abc", ["xyz", "abc"]).score, 100);
  });

  it("computeChrf works from pooled statistics and checks their length", () => {
    const a = corpusChrf(["ab"], [["ab"]]);
    const b = corpusChrf(["cde"], [["ef"]]);
    const pooled = a.statistics.map((x, i) => x + b.statistics[i]!);
    close(computeChrf(pooled), corpusChrf(["ab", "cde"], [["ab", "ef"]]).score);
    expect(() => computeChrf([1, 2, 3])).toThrow(/3 numbers but charOrder \+ wordOrder = 6 needs 3 \* 6/);
  });
});
