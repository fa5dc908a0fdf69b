// The Debian Administrator's Handbook (Debian package `debian-handbook`): one HTML
// directory per language with the same file names; paragraphs are <div class="para">.
// Files whose paragraph counts match the English file align paragraph by paragraph.
import { promises as fsp } from "node:fs";
import path from "node:path";

import { DataError } from "../errors.js";
import { htmlToText, innerBlocks } from "./html.js";

export const HANDBOOK_HTML_DIR = "usr/share/doc/debian-handbook/html";

export interface HandbookAlignment {
  dir: string;
  files: number;
  /** Files whose paragraph counts matched the English file. */
  alignedFiles: number;
  pairs: Array<[string, string]>;
}

/** Paragraph texts of one handbook HTML page, in order. */
export function handbookParagraphs(html: string): string[] {
  return innerBlocks(html, '<div class="para">', "div").map(htmlToText);
}

/**
 * Aligns the handbook in `langDir` (e.g. "fr-FR") with "en-US" under `root` (the
 * extracted package). Untranslated paragraphs (identical to the English) are kept here;
 * cleaning drops them and counts them.
 */
export async function alignHandbook(root: string, langDir: string): Promise<HandbookAlignment> {
  const base = path.join(root, HANDBOOK_HTML_DIR);
  const enDir = path.join(base, "en-US");
  const xxDir = path.join(base, langDir);
  let files: string[];
  try {
    files = (await fsp.readdir(enDir)).filter((f) => f.endsWith(".html")).sort();
  } catch {
    throw new DataError(
      "NOT_FOUND",
      `${enDir}: debian-handbook English HTML not found (is the package extracted?)`,
    );
  }
  const out: HandbookAlignment = { dir: langDir, files: files.length, alignedFiles: 0, pairs: [] };
  for (const f of files) {
    let xxHtml: string;
    try {
      xxHtml = await fsp.readFile(path.join(xxDir, f), "utf8");
    } catch {
      continue;
    }
    const ep = handbookParagraphs(await fsp.readFile(path.join(enDir, f), "utf8"));
    const xp = handbookParagraphs(xxHtml);
    if (ep.length !== xp.length || ep.length === 0) continue;
    out.alignedFiles++;
    for (let i = 0; i < ep.length; i++) out.pairs.push([ep[i]!, xp[i]!]);
  }
  return out;
}
