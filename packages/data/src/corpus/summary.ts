// Human-readable summary of a prepared corpus: pairs per language per split, drops by
// reason, source problems and warnings.
import { SKIP_REASONS } from "../clean.js";
import { languageInfo } from "../languages.js";
import type { CorpusManifest } from "./manifest.js";

const n = (x: number | undefined) => (x === undefined ? "-" : x.toLocaleString("en-US"));

/** A plain-text table of the manifest (one row per language, one column per split). */
export function formatSummary(m: CorpusManifest): string {
  const splits = [
    "train",
    "dev",
    "test",
    ...Object.keys(m.splits)
      .filter((s) => !["train", "dev", "test"].includes(s))
      .sort(),
  ];
  const header = ["lang", "name", ...splits, "dropped"];
  const rows: string[][] = [];
  const totals = new Array<number>(splits.length).fill(0);
  let droppedTotal = 0;
  for (const lang of m.languages.slice(1)) {
    const st = m.languageStats[lang];
    const dropped = st ? Object.values(st.skipped).reduce((a, b) => a + (b ?? 0), 0) : 0;
    droppedTotal += dropped;
    rows.push([
      lang,
      languageInfo(lang).name,
      ...splits.map((s, i) => {
        const v = m.splits[s]?.[`en-${lang}`]?.pairs;
        totals[i]! += v ?? 0;
        return n(v);
      }),
      n(dropped),
    ]);
  }
  rows.push(["total", `${m.languages.length - 1} languages`, ...totals.map(n), n(droppedTotal)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
  const reasons = SKIP_REASONS.filter((r) => m.skipped[r]).map((r) => `${r} ${n(m.skipped[r])}`);
  out.push("", `dropped by rule: ${reasons.join(", ") || "none"}`);
  out.push(
    `held out: ${m.heldOut.testSentences} test + ${m.heldOut.devSentences} dev English sentences (each test sentence in ≥ ${m.heldOut.testMinCoverage} languages); ` +
      `${m.heldOut.evalSetSentences} English sentences of eval sets kept out of train`,
  );
  out.push(
    `tokenizer: ${m.tokenizer.vocabSize} tokens, trained on ${n(m.tokenizer.trainedOnSentences)} sentences; ` +
      `train tokens: ${n(Object.values(m.tokens).reduce((a, t) => a + t.enTokens + t.xxTokens, 0))}`,
  );
  for (const s of m.sources) {
    const extra = s.skippedLocales ? `, ${Object.keys(s.skippedLocales).length} locales not used` : "";
    out.push(
      `source ${s.name}: ${s.items} items, ${n(s.pairs)} raw pairs${extra}${s.errorCount ? `, ${s.errorCount} errors` : ""}`,
    );
    for (const e of s.errors.slice(0, 5)) out.push(`  error: ${e}`);
    if (s.errorCount > 5) out.push(`  ... ${s.errorCount - 5} more in manifest.json`);
  }
  for (const w of m.warnings) out.push(`warning: ${w}`);
  return out.join("\n");
}
