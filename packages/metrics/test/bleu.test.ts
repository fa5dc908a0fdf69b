// BLEU on tiny inputs whose statistics are counted by hand in the comments; the
// expected scores are the closed forms written next to them.
import { describe, expect, it } from "vitest";

import {
  computeBleu,
  corpusBleu,
  formatScore,
  formatSignature,
  METRICS_VERSION,
  MetricsError,
  sentenceBleu,
} from "../src/index.js";

const close = (actual: number, expected: number) => expect(actual).toBeCloseTo(expected, 10);

describe("corpus BLEU, one segment", () => {
  it("counts clipped n-gram matches (the cat sat on the mat)", () => {
    // hyp the cat sat on the mat / ref the cat sat on a mat
    // 1-grams 5/6 ("the" clipped to 1), 2-grams 3/5, 3-grams 2/4, 4-grams 1/3; BP 1.
    // BLEU = 100 * (5/6 * 3/5 * 2/4 * 1/3)^(1/4) = 100 * 12^(-1/4)
    const s = corpusBleu(["the cat sat on the mat"], [["the cat sat on a mat"]]);
    expect(s.counts).toEqual([5, 3, 2, 1]);
    expect(s.totals).toEqual([6, 5, 4, 3]);
    close(s.score, 53.7284965911771);
    expect(formatScore(s)).toBe(
      "BLEU = 53.73 83.3/60.0/50.0/33.3 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)",
    );
  });

  it("applies the brevity penalty, and an order without n-grams zeroes corpus BLEU", () => {
    // hyp "the cat" (2 tokens) vs 6 reference tokens: BP = exp(1 - 6/2) = exp(-2).
    // 1-grams 2/2, 2-grams 1/1, no 3-grams: without effective order log(0) is floored -> 0.
    const s = corpusBleu(["the cat"], [["the cat sat on the mat"]]);
    expect(s.score).toBe(0);
    expect(formatScore(s)).toBe(
      "BLEU = 0.00 100.0/100.0/0.0/0.0 (BP = 0.135 ratio = 0.333 hyp_len = 2 ref_len = 6)",
    );
    // With effective order the mean runs over orders 1-2 only: BLEU = 100 * exp(-2).
    const e = corpusBleu(["the cat"], [["the cat sat on the mat"]], { effectiveOrder: true });
    close(e.score, 13.53352832366127);
  });

  describe("smoothing of orders without matches", () => {
    // hyp a b c d e / ref a x c y e: 1-grams 3/5, 2-grams 0/4, 3-grams 0/3, 4-grams 0/2.
    const hyp = ["a b c d e"];
    const refs = [["a x c y e"]];

    it("exp: the k-th empty order gets 100 / (2^k * total)", () => {
      // p = 60, 100/(2*4) = 12.5, 100/(4*3) = 8.33, 100/(8*2) = 6.25
      const s = corpusBleu(hyp, refs, { smoothMethod: "exp" });
      close(s.score, (60 * 12.5 * (100 / 12) * 6.25) ** 0.25);
      close(s.score, 14.058533129758727);
      // 6.25 prints as "6.2": Python rounds the exact tie half to even.
      expect(formatScore(s)).toBe(
        "BLEU = 14.06 60.0/12.5/8.3/6.2 (BP = 1.000 ratio = 1.000 hyp_len = 5 ref_len = 5)",
      );
    });

    it("floor: 100 * 0.1 / total", () => {
      // p = 60, 2.5, 3.33, 5 -> (2500)^(1/4) = sqrt(50)
      const s = corpusBleu(hyp, refs, { smoothMethod: "floor" });
      close(s.score, Math.sqrt(50));
      expect(formatScore(s)).toBe(
        "BLEU = 7.07 60.0/2.5/3.3/5.0 (BP = 1.000 ratio = 1.000 hyp_len = 5 ref_len = 5)",
      );
      close(
        corpusBleu(hyp, refs, { smoothMethod: "floor", smoothValue: 0.2 }).score,
        (60 * 5 * (20 / 3) * 10) ** 0.25,
      );
    });

    it("add-k: orders >= 2 get (matches + 1) / (total + 1)", () => {
      // p = 60, 1/5, 1/4, 1/3 (in percent) -> (60 * 20 * 25 * 33.33)^(1/4) = 10^(3/2)
      const s = corpusBleu(hyp, refs, { smoothMethod: "add-k" });
      close(s.score, 31.622776601683793);
      expect(s.counts).toEqual([3, 0, 0, 0]); // reported before smoothing
      expect(formatScore(s)).toBe(
        "BLEU = 31.62 60.0/20.0/25.0/33.3 (BP = 1.000 ratio = 1.000 hyp_len = 5 ref_len = 5)",
      );
    });

    it("none: an order without matches makes BLEU 0, with or without effective order", () => {
      const s = corpusBleu(hyp, refs, { smoothMethod: "none" });
      expect(s.score).toBe(0);
      expect(formatScore(s)).toBe(
        "BLEU = 0.00 60.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 5 ref_len = 5)",
      );
      expect(corpusBleu(hyp, refs, { smoothMethod: "none", effectiveOrder: true }).score).toBe(0);
    });

    it("no match at any order is 0 under every smoothing (no smoothing kicks in)", () => {
      for (const smoothMethod of ["exp", "floor", "add-k", "none"] as const) {
        const s = corpusBleu(["x y"], [["a b"]], { smoothMethod });
        expect(s.score).toBe(0);
        expect(formatScore(s)).toBe(
          "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 2 ref_len = 2)",
        );
      }
    });
  });

  it("handles empty hypotheses and references", () => {
    // Empty hypothesis: hyp_len 0 < ref_len -> BP 0.
    expect(formatScore(corpusBleu([""], [["a b"]]))).toBe(
      "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 0.000 ratio = 0.000 hyp_len = 0 ref_len = 2)",
    );
    // Both empty: BP 1, ratio reported as 0 (ref_len 0).
    expect(formatScore(corpusBleu([""], [[""]]))).toBe(
      "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 0.000 hyp_len = 0 ref_len = 0)",
    );
    expect(formatScore(corpusBleu(["a b"], [[""]]))).toBe(
      "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 0.000 hyp_len = 2 ref_len = 0)",
    );
    // Whitespace-only lines are empty after tokenization.
    expect(corpusBleu(["  \t "], [["a"]]).sysLen).toBe(0);
  });

  it("lowercases both sides only when asked", () => {
    const hyp = ["The Cat Sat Down"];
    const refs = [["the cat sat down"]];
    expect(corpusBleu(hyp, refs).score).toBe(0);
    close(corpusBleu(hyp, refs, { lowercase: true }).score, 100);
  });

  it("tokenizes before counting (13a splits the final period, none does not)", () => {
    // 13a: "the cat ." vs "the cat ." -> identical, 3 tokens; none: "cat." vs "cat" differ.
    const hyp = ["the cat sat."];
    const refs = [["the cat sat ."]];
    close(corpusBleu(hyp, refs).score, 100);
    const none = corpusBleu(hyp, refs, { tokenize: "none", effectiveOrder: true });
    // none: hyp [the, cat, sat.] vs ref [the, cat, sat, .]: 2/3, 1/2, 0/1 -> exp: 100/(2*1) = 50
    close(none.score, Math.exp(1 - 4 / 3) * ((200 / 3) * 50 * 50) ** (1 / 3));
  });
});

describe("corpus BLEU, several segments and references", () => {
  it("sums statistics over segments before computing (not a mean of sentence scores)", () => {
    // seg 1: a b c d = a b c d; seg 2: e f vs x y z (nothing matches).
    // 1-grams 4/6, 2-grams 3/4, 3-grams 2/2, 4-grams 1/1; c = 6, r = 7: BP = exp(-1/6).
    const s = corpusBleu(["a b c d", "e f"], [["a b c d", "x y z"]]);
    close(s.score, 100 * Math.exp(1 - 7 / 6) * 0.5 ** 0.25);
    close(s.score, 71.18034480382983);
    expect(formatScore(s)).toBe(
      "BLEU = 71.18 66.7/75.0/100.0/100.0 (BP = 0.846 ratio = 0.857 hyp_len = 6 ref_len = 7)",
    );
  });

  it("takes the closest reference length, the shorter one on a tie", () => {
    // hyp 4 tokens; refs of 3 and 5 tokens are both 1 away -> 3 (no brevity penalty).
    // N-gram counts: the highest count in any one reference -> every hyp n-gram matches.
    const tie = corpusBleu(["a b c d"], [["a b c"], ["a b c d e"]]);
    expect(tie.refLen).toBe(3);
    close(tie.score, 100);
    expect(formatScore(tie)).toBe(
      "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.333 hyp_len = 4 ref_len = 3)",
    );
    // refs of 2 and 5 tokens: 5 is closer -> BP = exp(1 - 5/4).
    const longer = corpusBleu(["a b c d"], [["a b"], ["a b c d e"]]);
    expect(longer.refLen).toBe(5);
    close(longer.bp, 0.7788007830714049);
  });

  it("clips by the highest count in one reference, not the sum over references", () => {
    // hyp the the the; refs "the cat" (the:1) and "the the dog" (the:2, "the the":1)
    // 1-grams 2/3, 2-grams 1/2, 3-grams 0/1 (exp: 100/(2*1) = 50), no 4-grams.
    const s = sentenceBleu("the the the", ["the cat", "the the dog"]);
    expect(s.counts).toEqual([2, 1, 0, 0]);
    close(s.score, ((200 / 3) * 50 * 50) ** (1 / 3));
    close(s.score, 55.032120814910435);
    expect(formatScore(s)).toBe(
      "BLEU = 55.03 66.7/50.0/50.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 3 ref_len = 3)",
    );
  });

  it("skips null references (a variable number per segment) and says nrefs:var", () => {
    const s = corpusBleu(
      ["a b c d", "e f g h"],
      [
        ["a b c d", "e f g h"],
        [null, "x"],
      ],
    );
    close(s.score, 100);
    expect(s.refLen).toBe(8);
    expect(formatSignature(s.signature)).toMatch(/^nrefs:var\|/);
    const two = corpusBleu(["a b c d"], [["a b c d"], ["x"]]);
    expect(formatSignature(two.signature)).toMatch(/^nrefs:2\|/);
  });
});

describe("sentence BLEU", () => {
  it("uses effective order by default and reports eff:yes", () => {
    // hyp "the cat" vs "the cat sat on the mat": orders 1-2 only -> 100 * BP.
    const s = sentenceBleu("the cat", ["the cat sat on the mat"]);
    close(s.score, 100 * Math.exp(-2));
    expect(formatSignature(s.signature)).toContain("|eff:yes|");
    expect(sentenceBleu("the cat", ["the cat sat on the mat"], { effectiveOrder: false }).score).toBe(0);
  });

  it("of a perfect one-word sentence is 100", () => {
    close(sentenceBleu("Hello", ["Hello"]).score, 100);
    close(sentenceBleu("Hello.", ["Hello ."]).score, 100);
  });
});

describe("computeBleu from sufficient statistics", () => {
  it("reproduces corpusBleu from pooled counts", () => {
    const a = corpusBleu(["a b c d"], [["a b c d"]]);
    const b = corpusBleu(["e f"], [["x y z"]]);
    const pooled = computeBleu({
      sysLen: a.sysLen + b.sysLen,
      refLen: a.refLen + b.refLen,
      correct: a.counts.map((c, i) => c + b.counts[i]!),
      total: a.totals.map((t, i) => t + b.totals[i]!),
    });
    close(pooled.score, corpusBleu(["a b c d", "e f"], [["a b c d", "x y z"]]).score);
  });

  it("rejects statistics of the wrong order", () => {
    expect(() => computeBleu({ sysLen: 1, refLen: 1, correct: [1], total: [1] })).toThrow(
      /statistics hold 1 match and 1 total counts but maxNgramOrder is 4/,
    );
  });

  it("honours maxNgramOrder", () => {
    // "a b c" vs "a b d": 1-grams 2/3, 2-grams 1/2 -> BLEU-2 = 100 * sqrt(2/3 * 1/2)
    close(corpusBleu(["a b c"], [["a b d"]], { maxNgramOrder: 2 }).score, 100 * Math.sqrt(1 / 3));
  });
});

describe("signatures", () => {
  it("read like sacreBLEU's, with our implementation in place of its version", () => {
    expect(METRICS_VERSION).toMatch(/^\d+\.\d+\.\d+/);
    // One token: 1-grams 1/1 and no 2-grams, so corpus BLEU (no effective order) is 0.
    const s = corpusBleu(["a"], [["a"]]);
    expect(formatSignature(s.signature)).toBe(
      `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|impl:polymoe-metrics-${METRICS_VERSION}|compat:sacrebleu-2.6.0`,
    );
    expect(formatSignature(s.signature, { short: true })).toBe(
      `#:1|c:mixed|e:no|tok:13a|s:exp|impl:polymoe-metrics-${METRICS_VERSION}|compat:sacrebleu-2.6.0`,
    );
    const floor = corpusBleu(["a"], [["a"]], { smoothMethod: "floor", lowercase: true, tokenize: "intl" });
    expect(formatSignature(floor.signature)).toMatch(
      /^nrefs:1\|case:lc\|eff:no\|tok:intl\|smooth:floor\[0\.10\]\|/,
    );
    const addK = corpusBleu(["a"], [["a"]], { smoothMethod: "add-k", smoothValue: 0.5, tokenize: "char" });
    expect(formatSignature(addK.signature)).toContain("|tok:char|smooth:add-k[0.50]|");
    expect(formatScore(s, { signature: true })).toBe(
      `BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|impl:polymoe-metrics-${METRICS_VERSION}|compat:sacrebleu-2.6.0 = 0.00 ` +
        "100.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 1 ref_len = 1)",
    );
  });
});

describe("bad input", () => {
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(MetricsError);
      return (e as MetricsError).code;
    }
    throw new Error("did not throw");
  };

  it("names what is wrong", () => {
    expect(code(() => corpusBleu([], [[]]))).toBe("EMPTY_CORPUS");
    expect(code(() => corpusBleu(["a", "b"], [["a"]]))).toBe("LENGTH_MISMATCH");
    expect(() => corpusBleu(["a", "b"], [["a"]])).toThrow(
      "reference stream 0 has 1 lines but there are 2 hypotheses; each stream needs exactly one line per hypothesis",
    );
    expect(code(() => corpusBleu(["a"], []))).toBe("NO_REFERENCES");
    expect(code(() => corpusBleu(["a"], [[null]]))).toBe("NO_REFERENCES");
    expect(code(() => corpusBleu(["a"], ["a"] as unknown as string[][]))).toBe("INVALID_INPUT");
    expect(code(() => corpusBleu([undefined] as unknown as string[], [["a"]]))).toBe("INVALID_INPUT");
    expect(code(() => corpusBleu(["a"], [["a"]], { tokenize: "13b" as "13a" }))).toBe("INVALID_CONFIG");
  });
});
