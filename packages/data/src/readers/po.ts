// Text gettext catalogs (.po): msgctxt, msgid, msgid_plural, msgstr[N], continuation
// lines, C escapes, `#, fuzzy` flags, obsolete `#~` entries (skipped). Errors name file:line.
import { DataError } from "../errors.js";
import { type Catalog, type CatalogMessage, decoderFor, headerPlural, parseHeader } from "./catalog.js";

interface Draft {
  context?: string;
  msgid?: string;
  msgidPlural?: string;
  msgstr: string[];
  fuzzy: boolean;
  line: number;
}

const ESCAPES: Record<string, string> = {
  n: "\n",
  t: "\t",
  r: "\r",
  '"': '"',
  "\\": "\\",
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
  "?": "?",
  "'": "'",
};

function unquote(s: string, where: string): string {
  const t = s.trim();
  if (t.length < 2 || t[0] !== '"' || t[t.length - 1] !== '"') {
    throw new DataError(
      "BAD_PO",
      `${where}: expected a double-quoted string, got ${JSON.stringify(t.slice(0, 40))}`,
    );
  }
  const body = t.slice(1, -1);
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '"') throw new DataError("BAD_PO", `${where}: unescaped '"' inside a string (write \\")`);
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = body[++i];
    if (e === undefined) throw new DataError("BAD_PO", `${where}: string ends with a lone backslash`);
    if (ESCAPES[e] !== undefined) out += ESCAPES[e];
    else if (/[0-7]/.test(e)) {
      let oct = e;
      while (oct.length < 3 && /[0-7]/.test(body[i + 1] ?? "")) oct += body[++i];
      out += String.fromCharCode(Number.parseInt(oct, 8));
    } else if (e === "x") {
      let hex = "";
      while (/[0-9a-fA-F]/.test(body[i + 1] ?? "")) hex += body[++i];
      if (hex === "") throw new DataError("BAD_PO", `${where}: \\x escape without hex digits`);
      out += String.fromCharCode(Number.parseInt(hex, 16));
    } else throw new DataError("BAD_PO", `${where}: unknown escape \\${e}`);
  }
  return out;
}

/**
 * Parses a .po file's bytes: the charset comes from the header (read as ASCII first),
 * then the whole file is decoded with it.
 */
export function parsePo(bytes: Uint8Array, file: string): Catalog {
  if (bytes.length === 0) throw new DataError("EMPTY_FILE", `${file}: empty .po file`);
  const ascii = new TextDecoder("latin1").decode(bytes);
  const cs = /charset=([^\s;"\\]+)/i.exec(ascii);
  let charset = (cs?.[1] ?? "utf-8").toLowerCase();
  if (charset === "charset") charset = "utf-8";
  const decoder = decoderFor(charset);
  if (!decoder) {
    throw new DataError(
      "UNSUPPORTED_CHARSET",
      `${file}: charset '${charset}' (from the Content-Type header) cannot be decoded by this Node.js; convert with msgconv --to-code=UTF-8`,
    );
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    // Find the line for the message.
    const lines = ascii.split("\n");
    let bad = 1;
    for (let i = 0; i < lines.length; i++) {
      try {
        new TextDecoder(charset, { fatal: true }).decode(Buffer.from(lines[i]!, "latin1"));
      } catch {
        bad = i + 1;
        break;
      }
    }
    throw new DataError(
      "INVALID_ENCODING",
      `${file}:${bad}: bytes are not valid ${charset} (the charset the header declares, utf-8 when none)`,
    );
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);

  const messages: CatalogMessage[] = [];
  let headers: Record<string, string> = {};
  let cur: Draft = { msgstr: [], fuzzy: false, line: 0 };
  let pendingFuzzy = false;
  let last: { field: "context" | "msgid" | "msgidPlural" | "msgstr"; index: number } | undefined;
  const flush = (line: number) => {
    if (cur.msgid === undefined) {
      if (cur.msgstr.length > 0 || cur.context !== undefined) {
        throw new DataError("BAD_PO", `${file}:${cur.line}: entry has no msgid`);
      }
    } else {
      if (cur.msgstr.length === 0) throw new DataError("BAD_PO", `${file}:${cur.line}: msgid without msgstr`);
      if (cur.msgid === "" && cur.context === undefined) headers = parseHeader(cur.msgstr[0] ?? "");
      else {
        const m: CatalogMessage = {
          msgid: cur.msgid,
          msgstr: cur.msgstr.map((s) => s ?? ""),
          fuzzy: cur.fuzzy,
          where: `${file}:${cur.line}`,
        };
        if (cur.context !== undefined) m.context = cur.context;
        if (cur.msgidPlural !== undefined) m.msgidPlural = cur.msgidPlural;
        messages.push(m);
      }
    }
    cur = { msgstr: [], fuzzy: false, line };
    last = undefined;
  };
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const where = `${file}:${lineNo}`;
    const line = lines[i]!.replace(/\r$/, "");
    const t = line.trim();
    if (t === "") {
      if (cur.msgid !== undefined && cur.msgstr.length > 0) flush(lineNo + 1);
      continue;
    }
    if (t.startsWith("#")) {
      if (t.startsWith("#~")) continue; // obsolete entry
      if (cur.msgstr.length > 0) flush(lineNo);
      if (t.startsWith("#,") && /\bfuzzy\b/.test(t)) pendingFuzzy = true;
      continue;
    }
    if (t.startsWith('"')) {
      if (!last) throw new DataError("BAD_PO", `${where}: string continuation without a keyword before it`);
      const s = unquote(t, where);
      if (last.field === "msgstr") cur.msgstr[last.index] = (cur.msgstr[last.index] ?? "") + s;
      else cur[last.field] = (cur[last.field] ?? "") + s;
      continue;
    }
    const m = /^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(.*)$/.exec(t);
    if (!m) {
      throw new DataError(
        "BAD_PO",
        `${where}: expected msgctxt, msgid, msgid_plural, msgstr, msgstr[N], a "string" or a # comment; got ${JSON.stringify(t.slice(0, 40))}`,
      );
    }
    const kw = m[1]!;
    const value = unquote(m[3]!, where);
    if ((kw === "msgctxt" || kw === "msgid") && cur.msgid !== undefined && cur.msgstr.length === 0) {
      throw new DataError("BAD_PO", `${file}:${cur.line}: msgid without msgstr`);
    }
    if ((kw === "msgctxt" || kw === "msgid") && cur.msgstr.length > 0) flush(lineNo);
    if (cur.msgid === undefined && cur.context === undefined) {
      cur.line = lineNo;
      cur.fuzzy = pendingFuzzy;
      pendingFuzzy = false;
    }
    if (kw === "msgctxt") {
      cur.context = value;
      last = { field: "context", index: 0 };
    } else if (kw === "msgid") {
      cur.msgid = value;
      last = { field: "msgid", index: 0 };
    } else if (kw === "msgid_plural") {
      if (cur.msgid === undefined) throw new DataError("BAD_PO", `${where}: msgid_plural before msgid`);
      cur.msgidPlural = value;
      last = { field: "msgidPlural", index: 0 };
    } else {
      if (cur.msgid === undefined) throw new DataError("BAD_PO", `${where}: ${kw} before msgid`);
      const idx = m[2] === undefined ? 0 : Number(m[2]);
      if (m[2] === undefined && cur.msgidPlural !== undefined) {
        throw new DataError("BAD_PO", `${where}: plural entry needs msgstr[N], got msgstr`);
      }
      cur.msgstr[idx] = value;
      last = { field: "msgstr", index: idx };
    }
  }
  flush(lines.length + 1);
  const cat: Catalog = { file, charset, headers, messages, invalidEntries: 0 };
  const { plural, error } = headerPlural(headers);
  if (plural) cat.plural = plural;
  if (error) cat.pluralError = error;
  return cat;
}
