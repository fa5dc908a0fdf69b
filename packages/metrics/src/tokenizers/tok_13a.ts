import { splitPunctuation13a } from "./regexp.js";

/**
 * The `13a` tokenizer: mteval-v13a.pl, the WMT standard and sacreBLEU's default.
 *
 * 1. Language-independent part, in this order: drop `<skipped>`, join `-\n`
 *    hyphenations, turn the remaining `\n` into spaces; if the line holds `&`,
 *    unescape `&quot;`, `&amp;`, `&lt;`, `&gt;` one after another (so `&amp;lt;`
 *    becomes `<`, while `&amp;quot;` becomes `&quot;`).
 * 2. Pad the line with one space on each side, so that a period or comma at either
 *    end always has a non-digit neighbour.
 * 3. Split ASCII punctuation ({@link splitPunctuation13a}).
 */
export function tokenize13a(line: string): string {
  line = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (line.includes("&")) {
    line = line
      .replaceAll("&quot;", '"')
      .replaceAll("&amp;", "&")
      .replaceAll("&lt;", "<")
      .replaceAll("&gt;", ">");
  }
  return splitPunctuation13a(` ${line} `);
}
