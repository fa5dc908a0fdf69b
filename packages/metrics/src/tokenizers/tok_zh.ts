import { codePoints, strip } from "../text.js";
import { splitPunctuation13a } from "./regexp.js";

/**
 * Code points the `zh` tokenizer treats as Chinese characters, as inclusive
 * `[first, last]` ranges.
 *
 * sacreBLEU's table compares each character against range ends written as
 * Python string literals. Two of its ends, meant as CJK Extension B (U+20000 to
 * U+2A6D6) and the Compatibility Supplement (U+2F800 to U+2FA1D), are written with
 * the 4-digit `\u` escape, so Python reads them as a BMP character followed by one
 * more digit: `"\u20000"` is U+2000 then "0". Comparing a one-character string
 * with such a two-character end makes the effective ranges U+2001..U+2A6D and
 * U+2F81..U+2FA1 — which cover General Punctuation (dashes, curly quotes, `…`),
 * currency symbols, arrows, math operators and more — while no astral character
 * (Extension B included) is ever split. Scores identical to sacreBLEU's need the
 * effective ranges, so these are they.
 */
const CHINESE_RANGES: readonly (readonly [number, number])[] = [
  [0x3400, 0x4db5], // CJK Unified Ideographs Extension A
  [0x4e00, 0x9fa5], // CJK Unified Ideographs
  [0x9fa6, 0x9fbb], // CJK Unified Ideographs, Unicode 4.1 additions
  [0xf900, 0xfa2d], // CJK Compatibility Ideographs
  [0xfa30, 0xfa6a],
  [0xfa70, 0xfad9],
  [0x2001, 0x2a6d], // effective range of the Extension B entry (see above)
  [0x2f81, 0x2fa1], // effective range of the Compatibility Supplement entry
  [0xff00, 0xffef], // full-width ASCII and punctuation, half-width kana, Hangul
  [0x2e80, 0x2eff], // CJK Radicals Supplement
  [0x3000, 0x303f], // CJK symbols and punctuation
  [0x31c0, 0x31ef], // CJK strokes
  [0x2f00, 0x2fdf], // Kangxi radicals
  [0x2ff0, 0x2fff], // ideographic description characters
  [0x3100, 0x312f], // Bopomofo
  [0x31a0, 0x31bf], // Bopomofo extended
  [0xfe10, 0xfe1f], // vertical forms
  [0xfe30, 0xfe4f], // CJK compatibility forms
  [0x2600, 0x26ff], // miscellaneous symbols
  [0x2700, 0x27bf], // dingbats
  [0x3200, 0x32ff], // enclosed CJK letters and months
  [0x3300, 0x33ff], // CJK compatibility
];

/** True when the code point `cp` is split off as a Chinese character by the `zh` tokenizer. */
export function isChineseCodePoint(cp: number): boolean {
  for (const [first, last] of CHINESE_RANGES) {
    if (cp >= first && cp <= last) return true;
  }
  return false;
}

/**
 * The `zh` tokenizer (sacreBLEU's, after Shujian Huang): strip the line, surround
 * every Chinese character ({@link isChineseCodePoint}) with spaces, then split
 * ASCII punctuation as `13a` does — without `13a`'s unescaping and padding.
 */
export function tokenizeZh(line: string): string {
  let spaced = "";
  for (const ch of codePoints(strip(line))) {
    spaced += isChineseCodePoint(ch.codePointAt(0)!) ? ` ${ch} ` : ch;
  }
  return splitPunctuation13a(spaced);
}
