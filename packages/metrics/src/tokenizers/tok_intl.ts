import { splitWhitespace } from "../text.js";

/** A punctuation mark after a non-number: split it off. */
const PUNCT_AFTER_NON_NUMBER = /(\P{N})(\p{P})/gu;
/** A punctuation mark before a non-number: split it off. */
const PUNCT_BEFORE_NON_NUMBER = /(\p{P})(\P{N})/gu;
/** Every symbol (math, currency, modifier, other: `\p{S}`) stands alone. */
const SYMBOL = /(\p{S})/gu;

/**
 * The `intl` tokenizer: mteval-v14.pl's international tokenization. Unicode
 * punctuation (`\p{P}`) is split from its neighbours unless both neighbours are
 * numbers (`\p{N}`), so `1,000.5` and `١٬٠٠٠` stay whole; every symbol (`\p{S}`)
 * is split off. Unlike `13a` the line is not padded, so a number followed by a
 * sentence-final period keeps it (`1990.` stays one token, as in mteval-v14). No
 * HTML entities are unescaped.
 *
 * Categories come from the JavaScript engine's Unicode tables; they agree with
 * any sacreBLEU installation whose `regex` module knows the same characters.
 */
export function tokenizeIntl(line: string): string {
  line = line.replace(PUNCT_AFTER_NON_NUMBER, "$1 $2 ");
  line = line.replace(PUNCT_BEFORE_NON_NUMBER, " $1 $2");
  line = line.replace(SYMBOL, " $1 ");
  return splitWhitespace(line).join(" ");
}
