// User parallel files: TSV (`src<TAB>tgt`), Moses (two line-aligned files), JSONL.
// Each yields [source, target, line] and raises BAD_PARALLEL_FILE / EMPTY_FILE /
// INVALID_ENCODING naming the file and line.
import { promises as fsp } from "node:fs";

import { DataError } from "../errors.js";
import { readLines } from "../util/fs.js";

export type ParallelLine = [src: string, tgt: string, line: number];

async function assertNonEmpty(file: string): Promise<void> {
  let st: Awaited<ReturnType<typeof fsp.stat>>;
  try {
    st = await fsp.stat(file);
  } catch {
    throw new DataError("NOT_FOUND", `${file}: no such file`);
  }
  if (st.size === 0) throw new DataError("EMPTY_FILE", `${file}: the file is empty`);
}

/** `src<TAB>tgt` per line. Blank lines are skipped; any other column count is an error. */
export async function* readTsv(file: string): AsyncGenerator<ParallelLine> {
  await assertNonEmpty(file);
  for await (const [n, line] of readLines(file)) {
    if (line.trim() === "") continue;
    const cols = line.split("\t");
    if (cols.length !== 2) {
      throw new DataError(
        "BAD_PARALLEL_FILE",
        `${file}:${n}: expected 2 tab-separated columns (source<TAB>target), got ${cols.length}`,
      );
    }
    yield [cols[0]!, cols[1]!, n];
  }
}

/** Two line-aligned files (`corpus.en`, `corpus.fr`); their line counts must match. */
export async function* readMoses(srcFile: string, tgtFile: string): AsyncGenerator<ParallelLine> {
  await assertNonEmpty(srcFile);
  await assertNonEmpty(tgtFile);
  const a = readLines(srcFile);
  const b = readLines(tgtFile);
  let n = 0;
  for (;;) {
    const [x, y] = await Promise.all([a.next(), b.next()]);
    if (x.done && y.done) return;
    if (x.done || y.done) {
      let na = n + (x.done ? 0 : 1);
      let nb = n + (y.done ? 0 : 1);
      if (!x.done) for await (const _ of a) na++;
      if (!y.done) for await (const _ of b) nb++;
      throw new DataError(
        "BAD_PARALLEL_FILE",
        `Moses files differ in length: ${srcFile} has ${na} lines but ${tgtFile} has ${nb}; ` +
          "they must be line-aligned (one sentence per line, the same number of lines)",
      );
    }
    n++;
    yield [x.value[1], y.value[1], x.value[0]];
  }
}

/**
 * JSON Lines. Each line is one of:
 *  `{"translation": {"<src>": "...", "<tgt>": "..."}}` (Hugging Face datasets, WMT),
 *  `{"<src>": "...", "<tgt>": "..."}`, or `{"src": "...", "tgt": "..."}`.
 */
export async function* readJsonl(
  file: string,
  srcLang: string,
  tgtLang: string,
): AsyncGenerator<ParallelLine> {
  await assertNonEmpty(file);
  for await (const [n, line] of readLines(file)) {
    if (line.trim() === "") continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new DataError("BAD_PARALLEL_FILE", `${file}:${n}: invalid JSON (${(e as Error).message})`);
    }
    const rec = (typeof obj === "object" && obj !== null ? obj : {}) as Record<string, unknown>;
    const inner = (
      typeof rec.translation === "object" && rec.translation !== null ? rec.translation : rec
    ) as Record<string, unknown>;
    const s = inner[srcLang] ?? inner.src;
    const t = inner[tgtLang] ?? inner.tgt;
    if (typeof s !== "string" || typeof t !== "string") {
      throw new DataError(
        "BAD_PARALLEL_FILE",
        `${file}:${n}: expected string fields "${srcLang}" and "${tgtLang}" (or "src"/"tgt", optionally under "translation"); ` +
          `found keys: ${Object.keys(inner).join(", ") || "none"}`,
      );
    }
    yield [s, t, n];
  }
}
