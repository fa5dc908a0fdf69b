// results.md and the plots of a finished study, from the stages' recorded outputs.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import type { LayerUsage } from "@polymoe/eval";
import { barChart, heatmap, lineChart } from "@polymoe/plot";
import { writeFileAtomic } from "@polymoe/train";

import type { StudyConfig } from "./config.js";
import type { EvalOutput, PruneOutput, TrainOutput } from "./study.js";

export interface ReportOutput {
  file: string;
  plots: string[];
}

const f2 = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x.toFixed(2) : "-");
const millions = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n.toLocaleString("en-US"));
const write = (file: string, text: string) => writeFileAtomic(file, [Buffer.from(text)]);

interface MetricLine {
  kind: string;
  step: number;
  loss?: number;
  nll?: number;
  tokens?: number;
}

/** Target tokens trained on, from the train lines (a step logged twice — redone after a resume — counts once). */
function trainedTokens(lines: readonly MetricLine[]): number {
  const byStep = new Map<number, number>();
  for (const l of lines) if (l.kind === "train" && typeof l.tokens === "number") byStep.set(l.step, l.tokens);
  return [...byStep.values()].reduce((a, b) => a + b, 0);
}

function metrics(runDir: string): MetricLine[] {
  const file = path.join(runDir, "metrics.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as MetricLine);
}

/** The evaluated models in table order, with the stage each came from. */
function evaluated(outputs: Record<string, unknown>): { stage: string; e: EvalOutput }[] {
  return Object.entries(outputs)
    .filter(([name]) => name.startsWith("eval-"))
    .map(([stage, e]) => ({ stage, e: e as EvalOutput }));
}

/** One sentence comparing a against b on each average, signed. */
function compare(a: EvalOutput, b: EvalOutput, split: string): string {
  const sa = a.splits[split];
  const sb = b.splits[split];
  if (!sa || !sb) return "";
  const parts = (["en-xx", "xx-en", "high", "low"] as const).map((k) => {
    const d = sa.averages[k].bleu - sb.averages[k].bleu;
    return `${k === "en-xx" ? "en→xx" : k === "xx-en" ? "xx→en" : `${k}-resource`} ${d >= 0 ? "+" : ""}${d.toFixed(2)}`;
  });
  const diffs = (["en-xx", "xx-en"] as const).map((k) => sa.averages[k].bleu - sb.averages[k].bleu);
  const verdict = diffs.every((d) => d === 0)
    ? "ties with"
    : diffs.every((d) => d >= 0)
      ? "beats"
      : diffs.every((d) => d <= 0)
        ? "does not beat"
        : "is mixed against";
  return `${a.label} ${verdict} ${b.label} on ${split} (BLEU difference: ${parts.join(", ")}).`;
}

/** Writes <dir>/results.md and <dir>/*.svg. */
export function writeStudyReport(
  dir: string,
  study: StudyConfig,
  outputs: Record<string, unknown>,
): ReportOutput {
  const models = evaluated(outputs);
  const splits = study.eval.splits.map(
    (s) => ({ udhr: "test-udhr", handbook: "test-handbook" })[s.name] ?? s.name,
  );
  const plots: string[] = [];
  const lines: string[] = [
    "# TaskMoE comparison study",
    "",
    `Study directory \`${study.dir}\`; corpus \`${study.data.corpus}\`; decoding: beam ${study.eval.beamSize}, batch ${study.eval.batchSize}.`,
    "Dense, TokenMoE and TaskMoE have the same active FFN width per token at every layer (equal training compute per token);",
    "the student is dense, the size of an extracted TaskMoE subnetwork, distilled from the TokenMoE.",
    "Parameters at inference: what must be loaded to serve every direction (for the extracted TaskMoE: one task's subnetwork, mean over tasks).",
    "tokens/s: output tokens per second while evaluating the split (wall clock on a shared machine: compare within a run only).",
  ];
  for (const split of splits) {
    lines.push(
      "",
      `## ${split}`,
      "",
      "| model | params at inference | BLEU en→xx | BLEU xx→en | chrF en→xx | chrF xx→en | BLEU high | BLEU low | BLEU all | tokens/s |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    );
    for (const { e } of models) {
      const s = e.splits[split];
      if (!s) continue;
      const a = s.averages;
      lines.push(
        `| ${e.label} | ${millions(e.parameters)} | ${f2(a["en-xx"].bleu)} | ${f2(a["xx-en"].bleu)} | ${f2(a["en-xx"].chrf)} | ${f2(a["xx-en"].chrf)} | ${f2(a.high.bleu)} | ${f2(a.low.bleu)} | ${f2(a.all.bleu)} | ${Math.round(s.decodeTokensPerSecond)} |`,
      );
    }
    const first = models.find((m) => m.e.splits[split])?.e.splits[split];
    if (first)
      lines.push("", `High-resource languages (by training pairs): ${first.highResource.join(", ")}.`);
    const by = (stage: string) => models.find((m) => m.stage === stage)?.e;
    const ex = by("eval-extracted");
    const comparisons = [
      ex && by("eval-student") ? compare(ex, by("eval-student") as EvalOutput, split) : "",
      ex && by("eval-dense") ? compare(ex, by("eval-dense") as EvalOutput, split) : "",
      ex && by("eval-tokenmoe") ? compare(ex, by("eval-tokenmoe") as EvalOutput, split) : "",
      by("eval-student") && by("eval-dense")
        ? compare(by("eval-student") as EvalOutput, by("eval-dense") as EvalOutput, split)
        : "",
    ].filter(Boolean);
    if (comparisons.length) lines.push("", ...comparisons.map((c) => `- ${c}`));

    // BLEU per language per model, one chart per direction.
    const langs = [
      ...new Set(
        models.flatMap(({ e }) =>
          (e.splits[split]?.directions ?? []).map((d) => (d.srcLang === "en" ? d.tgtLang : d.srcLang)),
        ),
      ),
    ].sort();
    for (const [tag, title, isDir] of [
      ["en-xx", "en→xx", (d: { srcLang: string }, l: string, tgt: string) => d.srcLang === "en" && tgt === l],
      ["xx-en", "xx→en", (d: { srcLang: string }, l: string, _t: string) => d.srcLang === l],
    ] as const) {
      const file = `bleu-${split}-${tag}.svg`;
      write(
        path.join(dir, file),
        barChart({
          title: `BLEU per language, ${title} (${split})`,
          yLabel: "BLEU",
          categories: langs,
          series: models.map(({ e }) => ({
            name: e.label,
            values: langs.map(
              (l) => e.splits[split]?.directions.find((d) => isDir(d, l, d.tgtLang))?.bleu ?? Number.NaN,
            ),
          })),
        }),
      );
      plots.push(file);
      lines.push("", `![BLEU per language ${title}](${file})`);
    }
  }

  // The extracted subnetworks against the full TaskMoE.
  const ex = models.find((m) => m.stage === "eval-extracted")?.e;
  if (ex?.equivalence?.length) {
    const eq = ex.equivalence;
    const bleuEqual = eq.filter((r) => r.bleuFull === r.bleuExtracted).length;
    const hypsEqual = eq.filter((r) => r.identicalHypotheses === r.sentences).length;
    lines.push(
      "",
      "## Extracted subnetworks against the full TaskMoE",
      "",
      `BLEU equal on ${bleuEqual} of ${eq.length} directions; identical hypotheses on ${hypsEqual} of ${eq.length} directions.`,
      "",
      "| split | direction | task | BLEU full | BLEU extracted | identical hypotheses |",
      "| --- | --- | --- | ---: | ---: | ---: |",
      ...eq.map(
        (r) =>
          `| ${r.split} | ${r.pair} | ${r.task} | ${f2(r.bleuFull)} | ${f2(r.bleuExtracted)} | ${r.identicalHypotheses} / ${r.sentences} |`,
      ),
    );
  }

  // Training.
  const trained = (["dense", "tokenmoe", "taskmoe", "student"] as const).flatMap((n) =>
    outputs[n] ? [{ name: n, t: outputs[n] as TrainOutput }] : [],
  );
  const lastDev = (runDir: string) =>
    metrics(runDir)
      .filter((l) => l.kind === "dev")
      .at(-1);
  lines.push(
    "",
    "## Training",
    "",
    "| run | steps | target tokens | minutes (last invocation) | last dev loss (label-smoothed) | last dev NLL | last dev BLEU |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...trained.map(
      ({ name, t }) =>
        `| ${name} | ${t.steps} | ${trainedTokens(metrics(t.runDir)).toLocaleString("en-US")} | ${(t.seconds / 60).toFixed(1)} | ${f2(t.devLoss)} | ${f2(lastDev(t.runDir)?.nll)} | ${f2(t.devBleu)} |`,
    ),
    "",
    "Dev loss and NLL are teacher-forced on the dev split, the same sentences for every run (the student's too: label cross-entropy, no teacher).",
    "The student's training loss is the distillation loss (KL + label CE), not comparable with the others'.",
  );
  const curves = trained.map(({ name, t }) => ({ name, m: metrics(t.runDir) }));
  const pts = (ls: MetricLine[], k: "loss" | "nll") =>
    ls.filter((l) => typeof l[k] === "number").map((l) => [l.step, l[k] as number] as [number, number]);
  write(
    path.join(dir, "loss-train.svg"),
    lineChart({
      title: "Training loss",
      xLabel: "step",
      yLabel: "loss per target token",
      series: curves.map(({ name, m }) => ({
        name,
        points: pts(
          m.filter((l) => l.kind === "train"),
          "loss",
        ),
      })),
    }),
  );
  write(
    path.join(dir, "loss-dev.svg"),
    lineChart({
      title: "Dev NLL",
      xLabel: "step",
      yLabel: "NLL per target token",
      series: curves.map(({ name, m }) => ({
        name,
        points: pts(
          m.filter((l) => l.kind === "dev"),
          "nll",
        ),
      })),
    }),
  );
  plots.push("loss-train.svg", "loss-dev.svg");
  lines.push("", "![training loss](loss-train.svg)", "", "![dev NLL](loss-dev.svg)");

  // Expert usage per direction (rows) and expert (columns), per MoE layer.
  const prune = outputs.prune as PruneOutput | undefined;
  const usageLines: string[] = [];
  for (const { stage, e } of models) {
    if (!e.usage || !existsSync(e.usage)) continue;
    const usage = JSON.parse(readFileSync(e.usage, "utf8")) as LayerUsage[];
    for (const u of usage) {
      const file = `usage-${stage.replace(/^eval-/, "")}-${u.layer.replace(/[^\w.-]/g, "_")}.svg`;
      write(
        path.join(dir, file),
        heatmap({
          title: `Expert usage per direction — ${e.label}, ${u.layer}`,
          rows: u.rows,
          columns: Array.from({ length: u.experts }, (_, i) => String(i)),
          values: u.fractions,
          xLabel: "expert",
          yLabel: "direction",
        }),
      );
      plots.push(file);
      usageLines.push(`![${e.label} ${u.layer}](${file})`);
    }
  }
  if (usageLines.length) lines.push("", "## Expert usage per language", "", ...usageLines);
  if (prune) {
    lines.push(
      "",
      `Pruning kept the most-used experts per layer, usage measured on ${study.prune.split} (${study.prune.maxSentences} sentences per direction): ` +
        prune.models.map((m) => `${m.keep} experts → ${millions(m.parameters)} parameters`).join(", ") +
        ".",
    );
  }
  const file = path.join(dir, "results.md");
  write(file, `${lines.join("\n")}\n`);
  return { file, plots };
}
