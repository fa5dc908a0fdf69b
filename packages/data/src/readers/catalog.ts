// The shape both gettext readers (.mo and .po) produce, and how a catalog's messages
// become English→target pairs.
import { type PluralForms, parsePluralForms } from "./plural.js";

/** One catalog entry. */
export interface CatalogMessage {
  /** msgctxt, when present. */
  context?: string;
  /** The English source (msgid). */
  msgid: string;
  /** The English plural source (msgid_plural), when present. */
  msgidPlural?: string;
  /** Translations: one string, or one per plural form. Empty strings = untranslated. */
  msgstr: string[];
  /** Marked `#, fuzzy` (.po only): a guess a translator has not confirmed. */
  fuzzy: boolean;
  /** Where it came from, for messages: `file:line` (.po) or `file#entry` (.mo). */
  where: string;
}

export interface Catalog {
  file: string;
  /** The charset the strings were decoded from (from the header; utf-8 when absent). */
  charset: string;
  /** Header fields (`Content-Type`, `Plural-Forms`, `Language`...). */
  headers: Record<string, string>;
  /** Parsed Plural-Forms, when the header has a valid one. */
  plural?: PluralForms;
  /**
   * Why the Plural-Forms header could not be used (real catalogs have typos such as
   * "nplural=1"); like GNU gettext, plural messages then use forms 0 and 1.
   */
  pluralError?: string;
  messages: CatalogMessage[];
  /** Entries dropped because their bytes were invalid in the declared charset. */
  invalidEntries: number;
}

/** Parses a gettext header (`Key: value\n` lines). */
export function parseHeader(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const c = line.indexOf(":");
    if (c > 0) out[line.slice(0, c).trim()] = line.slice(c + 1).trim();
  }
  return out;
}

/** The charset a header declares (`Content-Type: text/plain; charset=ISO-8859-2`), lowercased. */
export function headerCharset(headers: Record<string, string>): string {
  const ct = headers["Content-Type"] ?? "";
  const m = /charset=([^\s;]+)/i.exec(ct);
  const cs = (m?.[1] ?? "utf-8").toLowerCase();
  // "CHARSET" is the template placeholder xgettext writes; msgfmt treats such files as ASCII.
  return cs === "charset" ? "utf-8" : cs;
}

/** The catalog's plural rule, or the reason its Plural-Forms header is unusable. */
export function headerPlural(headers: Record<string, string>): { plural?: PluralForms; error?: string } {
  const pf = headers["Plural-Forms"];
  if (!pf) return {};
  try {
    return { plural: parsePluralForms(pf) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Charset names found in real catalogs that the WHATWG TextDecoder knows under another label. */
const CHARSET_ALIASES: Record<string, string> = {
  cp932: "shift_jis",
  sjis: "shift_jis",
  cp936: "gbk",
  cp949: "euc-kr",
  cp950: "big5",
  "big5-hkscs": "big5",
  eucjp: "euc-jp",
  euckr: "euc-kr",
  ascii: "windows-1252",
};

/** One raw English→target pair taken from a catalog (before cleaning). */
export interface RawPair {
  en: string;
  xx: string;
  where: string;
}

/**
 * The English→target pairs a catalog holds. Singular messages give (msgid, msgstr[0]).
 * Plural messages give (msgid, form for n=1) and (msgid_plural, form for n=5), the forms
 * chosen by evaluating the catalog's Plural-Forms (without one: forms 0 and 1). Fuzzy and
 * header entries are not translations and yield nothing; empty translations yield nothing
 * (the caller counts them as untranslated).
 */
export function* catalogPairs(
  cat: Catalog,
): Generator<RawPair | { skip: "untranslated" | "fuzzy"; where: string }> {
  for (const m of cat.messages) {
    if (m.msgid === "" && m.context === undefined) continue;
    if (m.fuzzy) {
      yield { skip: "fuzzy", where: m.where };
      continue;
    }
    if (m.msgidPlural === undefined) {
      const t = m.msgstr[0] ?? "";
      if (t === "") yield { skip: "untranslated", where: m.where };
      else yield { en: m.msgid, xx: t, where: m.where };
      continue;
    }
    const one = cat.plural ? cat.plural.index(1) : 0;
    const many = cat.plural ? cat.plural.index(5) : 1;
    const s1 = m.msgstr[one] ?? "";
    const s5 = m.msgstr[Math.min(many, m.msgstr.length - 1)] ?? "";
    if (s1 === "" && s5 === "") {
      yield { skip: "untranslated", where: m.where };
      continue;
    }
    if (s1 !== "") yield { en: m.msgid, xx: s1, where: m.where };
    if (s5 !== "" && m.msgidPlural !== m.msgid) yield { en: m.msgidPlural, xx: s5, where: m.where };
  }
}

/** A TextDecoder for a catalog's charset, or an Error saying it is unsupported. */
export function decoderFor(charset: string): InstanceType<typeof TextDecoder> | undefined {
  try {
    return new TextDecoder(CHARSET_ALIASES[charset] ?? charset, { fatal: true });
  } catch {
    return undefined;
  }
}
