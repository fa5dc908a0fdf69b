import { readFileSync } from "node:fs";

import { rstrip } from "@polymoe/metrics";

import { EvaluationError } from "./errors.js";

/**
 * The segments of a plain-text file, read as sacreBLEU's command line reads one:
 * strict UTF-8 (a byte-order mark is kept as a character, as Python's `utf-8`
 * codec keeps it), lines ended by `\n` only, a final newline ending the last line
 * rather than starting an empty one, and trailing whitespace (including `\r`)
 * removed from every line. `label` names the file in errors (e.g. `--hyp`).
 */
export function readSegments(path: string, label: string): string[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "it is a directory"
          : code === "EACCES"
            ? "permission denied"
            : (e as Error).message;
    throw new EvaluationError(
      "FILE_UNREADABLE",
      `${label} file '${path}' cannot be read: ${why} (${code}); pass the path of a readable text file`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const line = countNewlines(bytes, at) + 1;
    const lineStart = bytes.lastIndexOf(0x0a, at - 1) + 1;
    throw new EvaluationError(
      "INVALID_UTF8",
      `${label} file '${path}' is not valid UTF-8: line ${line}, byte ${at - lineStart + 1} of the line ` +
        `(0x${bytes[at]!.toString(16).padStart(2, "0")}); convert it to UTF-8, e.g. iconv -f latin1 -t utf-8`,
    );
  }
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map(rstrip);
}

function countNewlines(bytes: Uint8Array, end: number): number {
  let n = 0;
  for (let i = 0; i < end; i++) if (bytes[i] === 0x0a) n++;
  return n;
}

/** Offset of the first byte that does not continue a well-formed UTF-8 sequence (RFC 3629: no overlongs, surrogates or code points past U+10FFFF). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      if (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return bytes.length;
}
