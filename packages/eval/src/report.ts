import { barChart, heatmap } from "@polymoe/plot";

import type { EvalReport } from "./evaluate.js";
import type { LayerUsage } from "./usage.js";

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");

/** The report as Markdown: per-direction table, averages, decoding settings. */
export function reportMarkdown(r: EvalReport, usage: readonly LayerUsage[] = []): string {
  const lines = [
    `# Evaluation: ${r.split}`,
    "",
    `Checkpoint \`${r.checkpoint}\`; decoding: beam ${r.decoding.beamSize}, length penalty ${r.decoding.lengthPenalty}, ` +
      `batch ${r.decoding.batchSize}; ${Math.round(r.decodeTokensPerSecond)} output tokens/s.`,
    "",
    "| direction | sentences | BLEU | chrF | chrF++ | BLEU tokenizer |",
    "| --- | ---: | ---: | ---: | ---: | --- |",
    ...r.directions.map(
      (d) =>
        `| ${d.pair} | ${d.sentences} | ${f2(d.bleu)} | ${f2(d.chrf)} | ${f2(d.chrfpp)} | ${d.tokenize} |`,
    ),
    "",
    "| average | directions | BLEU | chrF |",
    "| --- | ---: | ---: | ---: |",
    ...Object.entries(r.averages).map(
      ([k, a]) => `| ${k} | ${a.directions} | ${f2(a.bleu)} | ${f2(a.chrf)} |`,
    ),
    "",
    `High-resource languages (by training pairs): ${r.highResource.join(", ") || "-"}.`,
  ];
  if (usage.length > 0) {
    lines.push("", "Expert usage per direction (share of routed tokens) is plotted in `usage-<layer>.svg`.");
    for (const u of usage) {
      const unused =
        u.fractions[0]?.map((_, e) => u.fractions.every((row) => (row[e] ?? 0) === 0)).filter(Boolean)
          .length ?? 0;
      lines.push(`- ${u.layer}: ${u.experts} experts, ${unused} never used on this split`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** SVG plots: BLEU per language (en->xx and xx->en), and one usage heatmap per MoE layer. */
export function reportPlots(r: EvalReport, usage: readonly LayerUsage[] = []): Record<string, string> {
  const langs = [...new Set(r.directions.map((d) => (d.srcLang === "en" ? d.tgtLang : d.srcLang)))].sort();
  const bleuOf = (src: string, tgt: string) =>
    r.directions.find((d) => d.srcLang === src && d.tgtLang === tgt)?.bleu ?? Number.NaN;
  const plots: Record<string, string> = {
    "bleu.svg": barChart({
      title: `BLEU per language (${r.split})`,
      yLabel: "BLEU",
      categories: langs,
      series: [
        { name: "en→xx", values: langs.map((l) => bleuOf("en", l)) },
        { name: "xx→en", values: langs.map((l) => bleuOf(l, "en")) },
      ],
    }),
  };
  for (const u of usage) {
    plots[`usage-${u.layer.replace(/[^\w.-]/g, "_")}.svg`] = heatmap({
      title: `Expert usage per direction — ${u.layer}`,
      rows: u.rows,
      columns: Array.from({ length: u.experts }, (_, e) => String(e)),
      values: u.fractions,
      xLabel: "expert",
      yLabel: "direction",
    });
  }
  return plots;
}
