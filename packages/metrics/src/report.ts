import type { BleuScore } from "./bleu.js";
import type { ChrfScore } from "./chrf.js";
import { formatFixed } from "./format.js";
import { formatSignature } from "./signature.js";

/** How {@link formatScore} prints a score. */
export interface FormatScoreOptions {
  /** Decimals of the score itself (sacreBLEU's `--width`); default 2. */
  width?: number;
  /** Put the signature after the name, as sacreBLEU's text format does: `BLEU|nrefs:1|... = ...`. */
  signature?: boolean;
  /** With `signature`: sacreBLEU's abbreviated keys (`#:1|c:mixed|...`). */
  short?: boolean;
}

/**
 * One line in sacreBLEU's text format:
 * `BLEU = 48.89 85.7/66.7/40.0/25.0 (BP = 1.000 ratio = 1.000 hyp_len = 7 ref_len = 7)`,
 * `chrF2 = 57.13`, `chrF2++ = 54.20`. Numbers are rounded as Python rounds them
 * (half to even on the exact binary value; see {@link formatFixed}).
 */
export function formatScore(score: BleuScore | ChrfScore, options: FormatScoreOptions = {}): string {
  const width = options.width ?? 2;
  const head = options.signature
    ? `${score.name}|${formatSignature(score.signature, { short: options.short ?? false })}`
    : score.name;
  let line = `${head} = ${formatFixed(score.score, width)}`;
  if (isBleu(score)) {
    const precisions = score.precisions.map((p) => formatFixed(p, 1)).join("/");
    line +=
      ` ${precisions} (BP = ${formatFixed(score.bp, 3)} ratio = ${formatFixed(score.ratio, 3)} ` +
      `hyp_len = ${score.sysLen} ref_len = ${score.refLen})`;
  }
  return line;
}

function isBleu(score: BleuScore | ChrfScore): score is BleuScore {
  return score.name === "BLEU";
}
