import { MetricsError } from "../errors.js";
import { tokenize13a } from "./tok_13a.js";
import { tokenizeChar } from "./tok_char.js";
import { tokenizeIntl } from "./tok_intl.js";
import { tokenizeNone } from "./tok_none.js";
import { tokenizeZh } from "./tok_zh.js";

/** Names of the BLEU tokenizers, as sacreBLEU spells them (`--tokenize`, and `tok:` in signatures). */
export const TOKENIZER_NAMES = ["13a", "intl", "zh", "char", "none"] as const;
export type TokenizerName = (typeof TOKENIZER_NAMES)[number];

/** A tokenizer maps one line to its tokens joined by single spaces. */
export type Tokenizer = (line: string) => string;

const TOKENIZERS: Readonly<Record<TokenizerName, Tokenizer>> = {
  "13a": tokenize13a,
  intl: tokenizeIntl,
  zh: tokenizeZh,
  char: tokenizeChar,
  none: tokenizeNone,
};

/** True when `name` is a registered tokenizer. */
export function isTokenizerName(name: string): name is TokenizerName {
  return Object.hasOwn(TOKENIZERS, name);
}

/** The tokenizer registered as `name`; an unknown name throws `UNKNOWN_TOKENIZER` listing the valid ones. */
export function getTokenizer(name: string): Tokenizer {
  if (!isTokenizerName(name)) {
    throw new MetricsError(
      "UNKNOWN_TOKENIZER",
      `unknown tokenizer '${name}'; valid tokenizers: ${TOKENIZER_NAMES.join(", ")}`,
    );
  }
  return TOKENIZERS[name];
}

/** Tokenizes one line with the named tokenizer (no lowercasing, no stripping: BLEU does those first). */
export function tokenize(line: string, name: TokenizerName = "13a"): string {
  return getTokenizer(name)(line);
}
