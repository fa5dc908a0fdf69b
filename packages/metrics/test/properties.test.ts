// Invariants on random multilingual text (fast-check): scores stay in [0, 100], a
// perfect hypothesis scores 100, duplicated references change nothing, and
// tokenizer output is normalised (single spaces, no edge whitespace).
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import {
  corpusBleu,
  corpusChrf,
  sentenceBleu,
  sentenceChrf,
  TOKENIZER_NAMES,
  tokenize,
} from "../src/index.js";

const pieces = [
  "the",
  "cat",
  "Straße",
  "ΟΔΟΣ",
  "我爱",
  "北京。",
  "١٬٠٠٠",
  "1,000.5",
  "don't",
  "«bien»",
  "(hi)",
  "😀",
  "𠀀",
  ".",
  ",",
  "-",
  "&amp;",
  " ",
  "\t",
  "\u3000",
  "\u00a0",
  "e-mail",
  "U.S.A.",
  "¿Qué?",
  "x^2",
  "50%",
];
const segment = fc.array(fc.constantFrom(...pieces), { maxLength: 12 }).map((xs) => xs.join(" "));
const tokenizer = fc.constantFrom(...TOKENIZER_NAMES);

describe("invariants", () => {
  it("BLEU and chrF lie in [0, 100]", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(segment, segment), { minLength: 1, maxLength: 5 }),
        tokenizer,
        (pairs, tok) => {
          const hyps = pairs.map((p) => p[0]);
          const refs = [pairs.map((p) => p[1])];
          for (const s of [
            corpusBleu(hyps, refs, { tokenize: tok }).score,
            corpusBleu(hyps, refs, { tokenize: tok, smoothMethod: "add-k" }).score,
            corpusChrf(hyps, refs).score,
            corpusChrf(hyps, refs, { wordOrder: 2 }).score,
          ]) {
            expect(s).toBeGreaterThanOrEqual(0);
            expect(s).toBeLessThanOrEqual(100 + 1e-9);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a hypothesis equal to its reference scores 100 (sentence BLEU, chrF, chrF++)", () => {
    fc.assert(
      fc.property(segment, tokenizer, (s, tok) => {
        if (tokenize(s.trim(), tok).length === 0) return;
        expect(sentenceBleu(s, [s], { tokenize: tok }).score).toBeCloseTo(100, 9);
        expect(sentenceChrf(s, [s]).score).toBeCloseTo(100, 9);
        expect(sentenceChrf(s, [s], { wordOrder: 2 }).score).toBeCloseTo(100, 9);
      }),
      { numRuns: 150 },
    );
  });

  it("a duplicated reference stream changes no score", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(segment, segment), { minLength: 1, maxLength: 4 }), (pairs) => {
        const hyps = pairs.map((p) => p[0]);
        const ref = pairs.map((p) => p[1]);
        expect(corpusBleu(hyps, [ref, ref]).score).toBe(corpusBleu(hyps, [ref]).score);
        expect(corpusChrf(hyps, [ref, ref], { wordOrder: 2 }).score).toBe(
          corpusChrf(hyps, [ref], { wordOrder: 2 }).score,
        );
      }),
      { numRuns: 100 },
    );
  });

  it("tokenizers return single-spaced tokens without edge whitespace", () => {
    fc.assert(
      fc.property(fc.oneof(segment, fc.string({ unit: "grapheme", maxLength: 30 })), (s) => {
        for (const tok of ["13a", "intl", "zh"] as const) {
          const out = tokenize(s, tok);
          expect(out).toBe(out.trim());
          expect(out).not.toMatch(/ {2}|[\t\n\u3000\u00a0]/);
        }
      }),
      { numRuns: 300 },
    );
  });
});
