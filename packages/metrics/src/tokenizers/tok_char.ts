import { codePoints } from "../text.js";

/**
 * The `char` tokenizer: every code point becomes a token (whitespace included; the
 * n-gram extraction's whitespace split drops those again). For languages without
 * word boundaries.
 */
export function tokenizeChar(line: string): string {
  return codePoints(line).join(" ");
}
