// The safetensors format (Hugging Face): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw little-endian tensor bytes. Written atomically; read lazily
// with positional reads, so a reader touches only the tensors it asks for.
import {
  closeSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import path from "node:path";

import { TrainError } from "./errors.js";

type DType = "F32" | "I32";

export interface TensorEntry {
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** fsyncs a directory so a rename inside it is durable. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some filesystems do not support fsync on directories; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes `chunks` to `file` atomically: a temporary file in the same
 * directory, fsync, rename over the target, fsync the directory.
 */
export function writeFileAtomic(file: string, chunks: Iterable<Uint8Array>): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, "w");
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/** Serialises tensors (sorted by name) and metadata into safetensors bytes. */
export function encodeSafetensors(
  tensors: Map<string, TensorEntry>,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  const names = [...tensors.keys()].sort();
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name) as TensorEntry;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new TrainError(
        "INVALID_ARGUMENT",
        `safetensors: ${name} has ${t.data.length} values for shape [${t.shape}]`,
      );
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  const chunks: Uint8Array[] = [len, headerBytes];
  for (const name of names) {
    const d = (tensors.get(name) as TensorEntry).data;
    chunks.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return chunks;
}

/** A tensor whose values are read only when the writer reaches it (one at a time, in name order). */
export interface LazyTensorEntry {
  dtype: DType;
  shape: number[];
  read: () => Float32Array | Int32Array;
}

/**
 * Writes tensors to a safetensors file atomically, reading each one's values
 * only when its turn comes, so that a file larger than memory (paged experts)
 * streams through one tensor at a time. Same bytes as writeSafetensors.
 */
export function writeSafetensorsLazy(
  file: string,
  tensors: Map<string, TensorEntry | LazyTensorEntry>,
  metadata: Record<string, string> = {},
): void {
  const names = [...tensors.keys()].sort();
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name) as TensorEntry | LazyTensorEntry;
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  function* chunks(): Generator<Uint8Array> {
    yield len;
    yield headerBytes;
    for (const name of names) {
      const t = tensors.get(name) as TensorEntry | LazyTensorEntry;
      const d = "data" in t ? t.data : t.read();
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (d.length !== n) {
        throw new TrainError(
          "INVALID_ARGUMENT",
          `safetensors: ${name} has ${d.length} values for shape [${t.shape}]`,
        );
      }
      yield new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    }
  }
  writeFileAtomic(file, chunks());
}

export function writeSafetensors(
  file: string,
  tensors: Map<string, TensorEntry>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

/** A safetensors file opened for lazy, positional reads. */
export class SafetensorsFile {
  readonly metadata: Record<string, string>;
  private readonly entries: Map<string, HeaderEntry>;
  private readonly dataStart: number;
  /** Bytes read from tensor data so far (to prove what a loader touched). */
  bytesRead = 0;

  private constructor(
    readonly file: string,
    private readonly fd: number,
  ) {
    const size = statSync(file).size;
    const corrupt = (why: string) =>
      new TrainError("CHECKPOINT_CORRUPT", `${file}: not a valid safetensors file (${why})`);
    if (size < 8) throw corrupt(`${size} bytes`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE());
    if (headerLen <= 0 || 8 + headerLen > size)
      throw corrupt(`header length ${headerLen} exceeds the file size ${size}`);
    const hb = Buffer.alloc(headerLen);
    readSync(fd, hb, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hb.toString("utf8"));
    } catch {
      throw corrupt("header is not JSON");
    }
    this.metadata = (header.__metadata__ as Record<string, string>) ?? {};
    delete header.__metadata__;
    this.entries = new Map(Object.entries(header) as [string, HeaderEntry][]);
    this.dataStart = 8 + headerLen;
    for (const [name, e] of this.entries) {
      if (this.dataStart + e.data_offsets[1] > size)
        throw corrupt(`tensor ${name} extends past the end (truncated file?)`);
    }
  }

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(file, "r");
    } catch (e) {
      throw new TrainError("CHECKPOINT_MISSING", `cannot open ${file}: ${(e as Error).message}`);
    }
    try {
      return new SafetensorsFile(file, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  shape(name: string): number[] {
    const e = this.entries.get(name);
    if (!e) throw new TrainError("CHECKPOINT_CORRUPT", `${this.file} has no tensor ${name}`);
    return e.shape;
  }

  read(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new TrainError("CHECKPOINT_CORRUPT", `${this.file} has no tensor ${name}`);
    const [b, end] = e.data_offsets;
    const buf = new ArrayBuffer(end - b);
    readSync(this.fd, new Uint8Array(buf), 0, end - b, this.dataStart + b);
    this.bytesRead += end - b;
    if (e.dtype === "F32") return { dtype: "F32", shape: e.shape, data: new Float32Array(buf) };
    if (e.dtype === "I32") return { dtype: "I32", shape: e.shape, data: new Int32Array(buf) };
    throw new TrainError(
      "CHECKPOINT_CORRUPT",
      `${this.file}: tensor ${name} has unsupported dtype ${e.dtype}`,
    );
  }

  close(): void {
    closeSync(this.fd);
  }
}
