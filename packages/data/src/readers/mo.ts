// Binary gettext catalogs (.mo), both byte orders, revisions 0 and 1 (the
// system-dependent string segments of revision 1 are not read: they only appear in
// catalogs built with <inttypes.h> format macros, which strict cleaning drops anyway).
import { DataError } from "../errors.js";
import {
  type Catalog,
  type CatalogMessage,
  decoderFor,
  headerCharset,
  headerPlural,
  parseHeader,
} from "./catalog.js";

const MAGIC_LE = 0x950412de;
const MAGIC_BE = 0xde120495;

export interface ParseMoOptions {
  /** What to do with an entry whose bytes are invalid in the declared charset. Default "error". */
  onInvalid?: "error" | "skip";
}

/**
 * Parses a .mo file's bytes. Errors (DataError BAD_MO / UNSUPPORTED_CHARSET /
 * INVALID_ENCODING) name `file`, the entry and the offsets involved.
 */
export function parseMo(bytes: Uint8Array, file: string, options: ParseMoOptions = {}): Catalog {
  const onInvalid = options.onInvalid ?? "error";
  if (bytes.length < 28) {
    throw new DataError(
      "BAD_MO",
      `${file}: ${bytes.length} bytes is too short for a .mo header (28 bytes): the file is truncated or not a .mo`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  let le: boolean;
  if (magic === MAGIC_LE) le = true;
  else if (magic === MAGIC_BE) le = false;
  else {
    throw new DataError(
      "BAD_MO",
      `${file}: wrong magic 0x${magic.toString(16).padStart(8, "0")} (expected 0x950412de in either byte order): not a gettext .mo file`,
    );
  }
  const u32 = (off: number) => view.getUint32(off, le);
  const revision = u32(4);
  const major = revision >>> 16;
  if (major > 1) {
    throw new DataError("BAD_MO", `${file}: .mo major revision ${major} is not supported (0 or 1 expected)`);
  }
  const n = u32(8);
  const origTable = u32(12);
  const transTable = u32(16);
  for (const [name, off] of [
    ["original-strings table", origTable],
    ["translated-strings table", transTable],
  ] as const) {
    if (off + n * 8 > bytes.length) {
      throw new DataError(
        "BAD_MO",
        `${file}: the ${name} (${n} entries at offset ${off}) ends at byte ${off + n * 8}, past the end of the file (${bytes.length} bytes): the file is truncated`,
      );
    }
  }
  const raw = (table: number, i: number, what: string): Uint8Array => {
    const len = u32(table + i * 8);
    const off = u32(table + i * 8 + 4);
    if (off + len > bytes.length) {
      throw new DataError(
        "BAD_MO",
        `${file}#${i}: ${what} string (length ${len} at offset ${off}) runs past the end of the file (${bytes.length} bytes): the file is truncated`,
      );
    }
    return bytes.subarray(off, off + len);
  };

  // The header is the translation of the empty msgid (entry 0, as msgids are sorted).
  let headers: Record<string, string> = {};
  for (let i = 0; i < Math.min(n, 1); i++) {
    if (raw(origTable, i, "original").length === 0) {
      headers = parseHeader(new TextDecoder("latin1").decode(raw(transTable, i, "translated")));
    }
  }
  const charset = headerCharset(headers);
  const decoder = decoderFor(charset);
  if (!decoder) {
    throw new DataError(
      "UNSUPPORTED_CHARSET",
      `${file}: charset '${charset}' (from the Content-Type header) cannot be decoded by this Node.js ` +
        `(${process.versions.icu ? `ICU ${process.versions.icu}` : "no ICU"}); convert the catalog with msgconv --to-code=UTF-8`,
    );
  }
  const { plural, error: pluralError } = headerPlural(headers);

  const messages: CatalogMessage[] = [];
  let invalidEntries = 0;
  for (let i = 0; i < n; i++) {
    const o = raw(origTable, i, "original");
    const t = raw(transTable, i, "translated");
    if (o.length === 0) continue; // header
    let orig: string;
    let trans: string;
    try {
      orig = decoder.decode(o);
      trans = decoder.decode(t);
    } catch {
      if (onInvalid === "skip") {
        invalidEntries++;
        continue;
      }
      throw new DataError(
        "INVALID_ENCODING",
        `${file}#${i}: bytes are not valid ${charset} (the charset the header declares); fix the catalog or its Content-Type`,
      );
    }
    let context: string | undefined;
    const eot = orig.indexOf("\u0004");
    if (eot >= 0) {
      context = orig.slice(0, eot);
      orig = orig.slice(eot + 1);
    }
    const nul = orig.indexOf("\0");
    const msg: CatalogMessage = {
      msgid: nul >= 0 ? orig.slice(0, nul) : orig,
      msgstr: trans.split("\0"),
      fuzzy: false,
      where: `${file}#${i}`,
    };
    if (nul >= 0) msg.msgidPlural = orig.slice(nul + 1);
    if (context !== undefined) msg.context = context;
    messages.push(msg);
  }
  const cat: Catalog = { file, charset, headers, messages, invalidEntries };
  if (plural) cat.plural = plural;
  if (pluralError) cat.pluralError = pluralError;
  return cat;
}
