import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statfsSync,
  writeSync,
} from "node:fs";
import path from "node:path";

import { gb, OffloadError } from "./errors.js";

/**
 * Writes `data` to `file` so that a crash leaves either the old file or the
 * new one, never a torn one: temporary file beside it, fsync (unless told
 * not to), rename.
 * Errors name the file and, for a full disk, the bytes that did not fit.
 */
export function writeFloatsAtomic(file: string, data: Float32Array, fsync = true): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let fd = -1;
  try {
    fd = openSync(tmp, "w");
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    if (fsync) fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, file);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw ioError(e, file, "write", data.byteLength);
  }
}

/** Reads exactly out.byteLength bytes of `file` into `out`. */
export function readFloats(file: string, out: Float32Array): void {
  let fd = -1;
  try {
    fd = openSync(file, "r");
    const size = fstatSync(fd).size;
    if (size !== out.byteLength) {
      throw new OffloadError(
        "STORE_CORRUPT",
        `${file} holds ${size} bytes but its tensor needs ${out.byteLength}; the offload directory was changed ` +
          "by something else — delete it and resume from the last checkpoint",
      );
    }
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    let off = 0;
    while (off < bytes.length) {
      const n = readSync(fd, bytes, off, bytes.length - off, off);
      if (n === 0)
        throw new OffloadError("STORE_CORRUPT", `${file} ended after ${off} of ${bytes.length} bytes`);
      off += n;
    }
  } catch (e) {
    if (e instanceof OffloadError) throw e;
    throw ioError(e, file, "read", out.byteLength);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

export function ioError(e: unknown, file: string, op: "read" | "write", bytes: number): Error {
  const err = e as NodeJS.ErrnoException;
  if (err.code === "ENOSPC" || err.code === "EDQUOT") {
    const dir = path.dirname(file);
    return new OffloadError(
      "DISK_FULL",
      `offload.dir ${dir} is full: writing ${bytes} bytes to ${path.basename(file)} failed (${err.code}); ` +
        `${gb(freeBytes(dir))} free. Free space there or point offload.dir at a larger disk`,
    );
  }
  if (err.code === "EACCES" || err.code === "EPERM" || err.code === "EROFS" || err.code === "ENOTDIR") {
    return new OffloadError(
      "DIR_UNWRITABLE",
      `offload.dir: cannot ${op} ${file} (${err.code}); choose a writable directory`,
    );
  }
  return err instanceof Error ? err : new Error(String(e));
}

/** Bytes available to this user on the file system holding `dir`. */
export function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return Number.NaN;
  }
}

/**
 * Creates `dir` if needed and proves it writable with a probe written the way
 * tensors are (atomically). Errors say which directory, why, and the fix.
 */
export function prepareDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new OffloadError(
      "DIR_UNWRITABLE",
      `offload.dir ${dir} cannot be created (${code}); choose a directory this user can write to`,
    );
  }
  const probe = path.join(dir, ".polymoe-probe");
  try {
    writeFloatsAtomic(probe, new Float32Array(4));
  } catch (e) {
    if (e instanceof OffloadError && e.code === "DISK_FULL") throw e;
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new OffloadError(
      "DIR_UNWRITABLE",
      `offload.dir ${dir} is not writable (${code}); choose a directory this user can write to`,
    );
  } finally {
    rmSync(probe, { force: true });
  }
}
