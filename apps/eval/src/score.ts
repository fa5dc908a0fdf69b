import {
  type BleuScore,
  type ChrfScore,
  corpusBleu,
  corpusChrf,
  formatScore,
  formatSignature,
  roundScore,
  type SmoothMethod,
  type TokenizerName,
} from "@polymoe/metrics";

import { EvaluationError } from "./errors.js";
import { readSegments } from "./text_file.js";

/** Metrics `polymoe score` computes, as `--metric` spells them. */
export const SCORE_METRICS = ["bleu", "chrf", "chrf++"] as const;
export type ScoreMetric = (typeof SCORE_METRICS)[number];

/** The key of each metric in the `--json` object. */
export const JSON_KEYS: Readonly<Record<ScoreMetric, string>> = {
  bleu: "bleu",
  chrf: "chrf",
  "chrf++": "chrfpp",
};

/** What to score and how. */
export interface ScoreSettings {
  /** Metrics, in the order they are reported. */
  metrics: readonly ScoreMetric[];
  /** BLEU tokenizer. */
  tokenize: TokenizerName;
  /** Lowercase hypotheses and references for every metric. */
  lowercase: boolean;
  /** BLEU smoothing. */
  smoothMethod: SmoothMethod;
  /** Floor value or k, for `floor` and `add-k`. */
  smoothValue?: number;
}

export interface MetricResult {
  metric: ScoreMetric;
  score: BleuScore | ChrfScore;
}

/** Scores hypotheses against reference streams (`references[k][i]`: k-th reference of segment i). */
export function scoreSegments(
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
  settings: ScoreSettings,
): MetricResult[] {
  return settings.metrics.map((metric) => {
    if (metric === "bleu") {
      return {
        metric,
        score: corpusBleu(hypotheses, references, {
          tokenize: settings.tokenize,
          lowercase: settings.lowercase,
          smoothMethod: settings.smoothMethod,
          ...(settings.smoothValue !== undefined ? { smoothValue: settings.smoothValue } : {}),
        }),
      };
    }
    return {
      metric,
      score: corpusChrf(hypotheses, references, {
        wordOrder: metric === "chrf++" ? 2 : 0,
        lowercase: settings.lowercase,
      }),
    };
  });
}

/** Reads a hypothesis file and one or more reference files (one segment per line) and scores them. */
export function scoreFiles(
  hypPath: string,
  refPaths: readonly string[],
  settings: ScoreSettings,
): MetricResult[] {
  const hypotheses = readSegments(hypPath, "--hyp");
  const references = refPaths.map((p) => readSegments(p, "--ref"));
  if (hypotheses.length === 0) {
    throw new EvaluationError("EMPTY_INPUT", `--hyp file '${hypPath}' has no lines; nothing to score`);
  }
  references.forEach((lines, k) => {
    if (lines.length !== hypotheses.length) {
      throw new EvaluationError(
        "LINE_COUNT_MISMATCH",
        `--ref file '${refPaths[k]}' has ${lines.length} lines but --hyp file '${hypPath}' has ${hypotheses.length}; ` +
          "each hypothesis line must pair with one reference line",
      );
    }
  });
  return scoreSegments(hypotheses, references, settings);
}

/** Score lines in sacreBLEU's text format, then each metric's signature as `NAME|signature`. */
export function formatText(
  results: readonly MetricResult[],
  options: { width: number; short: boolean },
): string {
  const scores = results.map((r) => formatScore(r.score, { width: options.width }));
  const signatures = results.map(
    (r) => `${r.score.name}|${formatSignature(r.score.signature, { short: options.short })}`,
  );
  return [...scores, ...signatures].join("\n");
}

/** One JSON object, `{"bleu": 35.12, "chrf": 61.4, "chrfpp": 59.03}`, scores rounded as sacreBLEU rounds them. */
export function formatJson(results: readonly MetricResult[], options: { width: number }): string {
  const out: Record<string, number> = {};
  for (const r of results) out[JSON_KEYS[r.metric]] = roundScore(r.score.score, options.width);
  return JSON.stringify(out);
}
