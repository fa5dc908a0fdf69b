// Regression against sacreBLEU 2.6.0 on seeded multilingual corpora. The corpora come
// from fixtures/corpus.ts; fixtures/sacrebleu-2.6.0.json holds only sacreBLEU's scores
// for them (how they were produced is in its "note").
import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import {
  type BleuOptions,
  type ChrfOptions,
  corpusBleu,
  corpusChrf,
  formatScore,
  sentenceBleu,
  sentenceChrf,
} from "../src/index.js";
import { fixtureCorpora } from "./fixtures/corpus.js";

interface Case {
  corpus: string;
  segment?: number;
  metric: "bleu" | "chrf" | "sentence-bleu" | "sentence-chrf";
  options: BleuOptions & ChrfOptions;
  score: number;
  line: string;
}

const fixture = JSON.parse(
  readFileSync(new URL("./fixtures/sacrebleu-2.6.0.json", import.meta.url), "utf8"),
) as {
  cases: Case[];
};
const corpora = new Map(fixtureCorpora().map((c) => [c.id, c]));

function ours(c: Case) {
  const corpus = corpora.get(c.corpus)!;
  switch (c.metric) {
    case "bleu":
      return corpusBleu(corpus.hypotheses, corpus.references, c.options as BleuOptions);
    case "chrf":
      return corpusChrf(corpus.hypotheses, corpus.references, c.options as ChrfOptions);
    case "sentence-bleu": {
      const refs = corpus.references
        .map((r) => r[c.segment!])
        .filter((r): r is string => r !== null && r !== undefined);
      return sentenceBleu(corpus.hypotheses[c.segment!]!, refs, c.options as BleuOptions);
    }
    case "sentence-chrf": {
      const refs = corpus.references
        .map((r) => r[c.segment!])
        .filter((r): r is string => r !== null && r !== undefined);
      return sentenceChrf(corpus.hypotheses[c.segment!]!, refs, c.options as ChrfOptions);
    }
  }
}

describe("agreement with sacreBLEU 2.6.0 on the fixture corpora", () => {
  it("regenerates the corpora the fixture was computed on", () => {
    expect([...corpora.keys()]).toEqual([...new Set(fixture.cases.map((c) => c.corpus))]);
    expect(fixture.cases.length).toBe(392);
  });

  for (const metric of ["bleu", "chrf", "sentence-bleu", "sentence-chrf"] as const) {
    const cases = fixture.cases.filter((c) => c.metric === metric);
    it(`${metric}: ${cases.length} scores agree to 1e-9 and print identically`, () => {
      expect(cases.length).toBeGreaterThan(0);
      const mismatches: string[] = [];
      for (const c of cases) {
        const s = ours(c);
        if (Math.abs(s.score - c.score) > 1e-9 || formatScore(s) !== c.line) {
          mismatches.push(
            `${c.corpus}#${c.segment ?? ""} ${JSON.stringify(c.options)}: ${formatScore(s)} vs ${c.line}`,
          );
        }
      }
      expect(mismatches).toEqual([]);
    });
  }

  it("covers zero scores, perfect scores and scores in between", () => {
    const scores = fixture.cases.map((c) => c.score);
    expect(scores.some((s) => s === 0)).toBe(true);
    expect(scores.filter((s) => s > 0 && s < 100).length).toBeGreaterThan(300);
  });
});
