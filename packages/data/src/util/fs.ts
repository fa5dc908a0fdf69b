import { createReadStream, createWriteStream, promises as fsp, type WriteStream } from "node:fs";
import path from "node:path";

import { DataError } from "../errors.js";

/** Writes `data` to `file` atomically: temp file in the same directory, fsync, rename. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const fh = await fsp.open(tmp, "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
}

/**
 * A line writer that writes to a temp file and renames it into place on `close()`
 * (after fsync), so a killed run never leaves a half-written file under the final name.
 */
export class AtomicLineWriter {
  private readonly tmp: string;
  private readonly stream: WriteStream;
  private buf: string[] = [];
  private bufChars = 0;
  lines = 0;

  constructor(readonly file: string) {
    this.tmp = `${file}.tmp-${process.pid}`;
    this.stream = createWriteStream(this.tmp, { encoding: "utf8" });
  }

  static async open(file: string): Promise<AtomicLineWriter> {
    await fsp.mkdir(path.dirname(file), { recursive: true });
    return new AtomicLineWriter(file);
  }

  /** Appends one line (no newline in `line`). Resolves once buffered data was accepted. */
  async write(line: string): Promise<void> {
    this.buf.push(line);
    this.bufChars += line.length + 1;
    this.lines++;
    if (this.bufChars >= 1 << 16) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.buf.length === 0) return;
    const chunk = this.buf.join("\n") + "\n";
    this.buf = [];
    this.bufChars = 0;
    if (!this.stream.write(chunk)) await new Promise<void>((r) => this.stream.once("drain", () => r()));
  }

  async close(): Promise<void> {
    await this.flush();
    await new Promise<void>((resolve, reject) =>
      this.stream.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    const fh = await fsp.open(this.tmp, "r+");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(this.tmp, this.file);
  }

  /** Drops the temp file (on error paths). */
  async abort(): Promise<void> {
    this.stream.destroy();
    await fsp.rm(this.tmp, { force: true });
  }
}

/**
 * Streams the lines of a UTF-8 text file: yields `[lineNumber (1-based), text]` without
 * the newline (a trailing `\r` is removed). Invalid UTF-8 raises INVALID_ENCODING naming
 * the file and line; a missing file raises NOT_FOUND.
 */
export async function* readLines(file: string): AsyncGenerator<[number, string]> {
  let stream: ReturnType<typeof createReadStream>;
  try {
    await fsp.access(file);
  } catch {
    throw new DataError("NOT_FOUND", `${file}: no such file`);
  }
  stream = createReadStream(file, { highWaterMark: 1 << 20 });
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let carry = "";
  let lineNo = 0;
  let pending: Uint8Array = new Uint8Array(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    // Decode up to the last newline byte so that a decode error maps to a line.
    let data: Uint8Array = chunk;
    if (pending.length > 0) {
      const merged = new Uint8Array(pending.length + chunk.length);
      merged.set(pending);
      merged.set(chunk, pending.length);
      data = merged;
    }
    const lastNl = data.lastIndexOf(10);
    if (lastNl < 0) {
      pending = data;
      continue;
    }
    pending = data.subarray(lastNl + 1);
    let text: string;
    try {
      text = decoder.decode(data.subarray(0, lastNl + 1));
    } catch {
      const at = firstInvalidLine(data.subarray(0, lastNl + 1));
      throw new DataError(
        "INVALID_ENCODING",
        `${file}:${lineNo + at}: invalid UTF-8. Convert the file to UTF-8 (e.g. iconv -f <charset> -t UTF-8).`,
      );
    }
    const parts = (carry + text).split("\n");
    carry = parts.pop() ?? "";
    for (const p of parts) {
      lineNo++;
      yield [lineNo, p.endsWith("\r") ? p.slice(0, -1) : p];
    }
  }
  if (pending.length > 0) {
    let text: string;
    try {
      text = decoder.decode(pending);
    } catch {
      throw new DataError(
        "INVALID_ENCODING",
        `${file}:${lineNo + 1}: invalid UTF-8. Convert the file to UTF-8 (e.g. iconv -f <charset> -t UTF-8).`,
      );
    }
    carry += text;
  }
  if (carry.length > 0) {
    lineNo++;
    yield [lineNo, carry.endsWith("\r") ? carry.slice(0, -1) : carry];
  }
}

/** 1-based index of the first line in `bytes` that is not valid UTF-8. */
function firstInvalidLine(bytes: Uint8Array): number {
  const dec = new TextDecoder("utf-8", { fatal: true });
  let start = 0;
  let line = 1;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 10) {
      try {
        dec.decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      start = i + 1;
      line++;
    }
  }
  return line;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}
