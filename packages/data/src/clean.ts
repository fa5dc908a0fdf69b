// Cleaning rules for English→target message pairs, applied in this order (each one
// counted under its reason in the prepare summary):
//
//  1. split     multi-line messages: paragraphs (blank-line separated) must match in
//               number (else `multiline_mismatch`); within a paragraph, equal line
//               counts pair line by line, otherwise the lines are joined with spaces.
//  2. accelerators  keyboard mnemonics are removed on each side: a single `_` or `&`
//               before a character (`Sa_ve`, `&Open`), `~` before a letter (`~File`),
//               and CJK-style suffixes `(_F)` / `(&F)`; `&&` becomes `&`.
//  3. whitespace runs collapse to one space; ends are trimmed; text is NFC-normalised.
//  4. empty      either side empty after 1–3.
//  5. untranslated  target identical to the English (a copied, untranslated message).
//  6. no_letters the English has no letter at all ("%s: %s", "---", "42").
//  7. format     (strict only) printf/Qt/Python/brace/shell placeholders on either side:
//               `%s %d %1$s %.2f %%`, `%1`, `%(name)s`, `{0} {name} {}`, `${x} $HOME`.
//  8. markup     (strict only) XML/HTML tags, entities (`&amp;`), URLs.
//  9. too_long   a side longer than `maxChars` characters.
// 10. length_ratio  (longer + slack) / (shorter + slack) above `maxLengthRatio`, with
//               lengths in UTF-8 bytes (so CJK and Latin compare fairly) and `ratioSlackBytes`
//               of slack so short UI labels ("Home" → "Persönlicher Ordner") survive.
// Deduplication per language (`duplicate`) happens where pairs are collected.

/** Why a pair was dropped (the summary counts each). */
export type SkipReason =
  | "untranslated"
  | "fuzzy"
  | "empty"
  | "no_letters"
  | "format"
  | "markup"
  | "multiline_mismatch"
  | "too_long"
  | "length_ratio"
  | "duplicate"
  | "invalid_encoding"
  | "split_held_out";

export const SKIP_REASONS: readonly SkipReason[] = [
  "untranslated",
  "fuzzy",
  "empty",
  "no_letters",
  "format",
  "markup",
  "multiline_mismatch",
  "too_long",
  "length_ratio",
  "duplicate",
  "invalid_encoding",
  "split_held_out",
];

export interface CleaningOptions {
  /** Drop messages with format placeholders or markup (rules 7–8). */
  strict: boolean;
  /** Rule 10 threshold (UTF-8 bytes, longer / shorter). */
  maxLengthRatio: number;
  /** Rule 10 slack added to both lengths (bytes). */
  ratioSlackBytes: number;
  /** Rule 9: maximum characters per side. */
  maxChars: number;
}

export const DEFAULT_CLEANING: CleaningOptions = {
  strict: true,
  maxLengthRatio: 3,
  ratioSlackBytes: 12,
  maxChars: 512,
};

export interface CleanResult {
  /** Cleaned [english, target] segments (0 or more). */
  kept: Array<[string, string]>;
  /** One reason per dropped segment. */
  skipped: SkipReason[];
}

const FORMAT_RE =
  /%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t|I64)?[diouxXeEfFgGaAcspn%]|%\d|%\([A-Za-z_][A-Za-z0-9_]*\)[a-zA-Z]|%\{[^}]*\}|\{[A-Za-z0-9_.:!]*\}|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*/;
const MARKUP_RE = /<\/?[A-Za-z][^<>]*>|&(?:[A-Za-z][A-Za-z0-9]*|#\d+|#x[0-9A-Fa-f]+);|https?:\/\/|\bwww\./;
const LETTER_RE = /\p{L}/u;
const UTF8 = new TextEncoder();

/** True when `s` holds a printf/Qt/Python/brace/shell placeholder (rule 7). */
export function hasFormatSpecifier(s: string): boolean {
  return FORMAT_RE.test(s);
}

/** True when `s` holds XML/HTML markup, an entity or a URL (rule 8). */
export function hasMarkup(s: string): boolean {
  return MARKUP_RE.test(s);
}

/**
 * Removes keyboard accelerators (rule 2): CJK-style `(_F)`/`(&F)` suffixes; one `_` or
 * `&` mnemonic (only when the string holds exactly one, so identifiers like `a_b_c` and
 * entities are left alone); one `~` before a letter; `&&` → `&`.
 */
export function stripAccelerators(s: string): string {
  let t = s.replace(/\s*[(（][_&~][^\s)）][)）]/gu, "");
  const underscores = t.match(/_(?=[^\s_])/gu);
  if (underscores && underscores.length === 1 && !/__/.test(t)) t = t.replace(/_(?=[^\s_])/u, "");
  const amps = t.match(/&(?=[^\s&;#])/gu);
  if (amps && amps.length === 1 && !/&[A-Za-z][A-Za-z0-9]*;/.test(t)) t = t.replace(/&(?=[^\s&;#])/u, "");
  t = t.replace(/&&/g, "&");
  const tildes = t.match(/~(?=\p{L})/gu);
  if (tildes && tildes.length === 1) t = t.replace(/~(?=\p{L})/u, "");
  return t;
}

/** Collapses whitespace runs, trims, NFC-normalises (rule 3). */
export function normalizeText(s: string): string {
  return s.normalize("NFC").replace(/\s+/gu, " ").trim();
}

function paragraphs(s: string): string[][] {
  return s
    .replace(/\r\n?/g, "\n")
    .split(/\n[ \t]*\n+/)
    .map((p) => p.split("\n").filter((l) => l.trim() !== ""))
    .filter((p) => p.length > 0);
}

/** The checks of rules 4–10 on one segment pair; undefined when it passes. */
export function checkSegment(en: string, xx: string, o: CleaningOptions): SkipReason | undefined {
  if (en === "" || xx === "") return "empty";
  if (en === xx) return "untranslated";
  if (!LETTER_RE.test(en)) return "no_letters";
  if (o.strict) {
    if (FORMAT_RE.test(en) || FORMAT_RE.test(xx)) return "format";
    if (MARKUP_RE.test(en) || MARKUP_RE.test(xx)) return "markup";
  }
  if (en.length > o.maxChars || xx.length > o.maxChars) return "too_long";
  const a = UTF8.encode(en).length;
  const b = UTF8.encode(xx).length;
  const hi = Math.max(a, b) + o.ratioSlackBytes;
  const lo = Math.min(a, b) + o.ratioSlackBytes;
  if (hi / lo > o.maxLengthRatio) return "length_ratio";
  return undefined;
}

/**
 * Applies rules 1–10 to one raw message pair. Pure; returns the kept segments and one
 * skip reason per dropped segment.
 */
export function cleanPair(enRaw: string, xxRaw: string, o: CleaningOptions = DEFAULT_CLEANING): CleanResult {
  const out: CleanResult = { kept: [], skipped: [] };
  const pe = paragraphs(enRaw);
  const px = paragraphs(xxRaw);
  if (pe.length === 0 || px.length === 0) {
    out.skipped.push("empty");
    return out;
  }
  if (pe.length !== px.length) {
    out.skipped.push("multiline_mismatch");
    return out;
  }
  const segs: Array<[string, string]> = [];
  for (let i = 0; i < pe.length; i++) {
    const le = pe[i]!;
    const lx = px[i]!;
    if (le.length === lx.length) for (let j = 0; j < le.length; j++) segs.push([le[j]!, lx[j]!]);
    else segs.push([le.join(" "), lx.join(" ")]);
  }
  for (const [e, x] of segs) {
    const en = normalizeText(stripAccelerators(e));
    const xx = normalizeText(stripAccelerators(x));
    const why = checkSegment(en, xx, o);
    if (why) out.skipped.push(why);
    else out.kept.push([en, xx]);
  }
  return out;
}

/**
 * The key that decides identity of an English sentence for dedupe and held-out splits:
 * case-folded, whitespace-collapsed, with trailing punctuation and ellipses removed, so
 * "Open File…" and "open file" are the same sentence and cannot straddle train and test.
 */
export function englishKey(en: string): string {
  return en
    .normalize("NFKC")
    .toLowerCase()
    .replace(/[\s\u00a0]+/gu, " ")
    .replace(/[\s.:;!?…,]+$/u, "")
    .trim();
}
