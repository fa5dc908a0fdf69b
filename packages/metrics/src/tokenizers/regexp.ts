import { splitWhitespace } from "../text.js";

// The punctuation splitting shared by the `13a` and `zh` tokenizers (mteval-v13a.pl's
// "language-dependent part"). Each rule is one left-to-right, non-overlapping
// substitution over the whole line, applied in this order.

/**
 * ASCII symbols split off on both sides: `{|}~`, `` [\]^_` ``, space to `&`
 * (`!"#$%&`), `()*+`, `:;<=>?@` and `/`. Apostrophe, comma, hyphen and period are
 * not in the set: they get the digit-aware rules below.
 */
const SYMBOLS = /([\u007b-\u007e\u005b-\u0060\u0020-\u0026\u0028-\u002b\u003a-\u0040\u002f])/gu;
/** Period or comma after a non-digit: split off (so `1,000.5` stays whole). */
const PERIOD_COMMA_AFTER_NON_DIGIT = /([^0-9])([.,])/gu;
/** Period or comma before a non-digit: split off. */
const PERIOD_COMMA_BEFORE_NON_DIGIT = /([.,])([^0-9])/gu;
/** Hyphen after a digit: split off (`1990-2000` -> `1990 - 2000`, but `e-mail` stays). */
const DASH_AFTER_DIGIT = /([0-9])(-)/gu;

/** Splits ASCII punctuation as mteval-v13a does, then collapses whitespace (Python's `split()`/`join`). */
export function splitPunctuation13a(line: string): string {
  line = line.replace(SYMBOLS, " $1 ");
  line = line.replace(PERIOD_COMMA_AFTER_NON_DIGIT, "$1 $2 ");
  line = line.replace(PERIOD_COMMA_BEFORE_NON_DIGIT, " $1 $2");
  line = line.replace(DASH_AFTER_DIGIT, "$1 $2 ");
  return splitWhitespace(line).join(" ");
}
