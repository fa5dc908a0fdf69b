// Python string semantics that sacreBLEU's definitions rest on.
//
// sacreBLEU is written against Python's `str`: a sequence of code points whose
// `split()`/`strip()`/`rstrip()` use Python's own whitespace set, which is
// neither JavaScript's `\s` (that one adds U+FEFF and lacks U+001C..U+001F and
// U+0085) nor ASCII whitespace. Every tokenizer and n-gram extractor here goes
// through these helpers so that the two agree on every input.

/**
 * Python's `str.isspace()` set: code points whose bidirectional class is WS, B
 * or S, or whose general category is Zs. Stable across Unicode versions since
 * 6.3 (U+180E left it then).
 */
const PY_WHITESPACE_CLASS =
  "\\t\\n\\v\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

const WHITESPACE_RUN = new RegExp(`[${PY_WHITESPACE_CLASS}]+`, "u");
const TRAILING_WHITESPACE = new RegExp(`[${PY_WHITESPACE_CLASS}]+$`, "u");
const LEADING_WHITESPACE = new RegExp(`^[${PY_WHITESPACE_CLASS}]+`, "u");
const ANY_WHITESPACE = new RegExp(`[${PY_WHITESPACE_CLASS}]`, "gu");

/** Python's `s.split()`: fields between runs of whitespace, none empty. */
export function splitWhitespace(s: string): string[] {
  const parts = s.split(WHITESPACE_RUN);
  // Only a leading or a trailing run leaves an empty field behind.
  if (parts.length > 0 && parts[0] === "") parts.shift();
  if (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

/** Python's `s.rstrip()`. */
export function rstrip(s: string): string {
  return s.replace(TRAILING_WHITESPACE, "");
}

/** Python's `s.strip()`. */
export function strip(s: string): string {
  return s.replace(LEADING_WHITESPACE, "").replace(TRAILING_WHITESPACE, "");
}

/** Python's `"".join(s.split())`: `s` with every whitespace code point removed. */
export function removeWhitespace(s: string): string {
  return s.replace(ANY_WHITESPACE, "");
}

/** The code points of `s`, one string each (Python iterates a `str` this way; UTF-16 units would split astral characters). */
export function codePoints(s: string): string[] {
  return Array.from(s);
}

/**
 * Python's `s.lower()`. JavaScript's locale-independent `toLowerCase()` applies the
 * same Unicode mappings (full case mapping, including the context-dependent final
 * sigma); the two differ only on characters that one runtime's Unicode tables know
 * and the other's do not.
 */
export function lower(s: string): string {
  return s.toLowerCase();
}
