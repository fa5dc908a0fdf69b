// A tiered store of float32 tensors: host memory up to a byte budget, the rest
// in one file per tensor under a directory. Tensors are used by acquire/
// release; released ones are evicted least-recently-used first when room is
// needed, written back only when changed, always atomically.
import { readdirSync, rmSync } from "node:fs";
import path from "node:path";

import { gb, OffloadError } from "./errors.js";
import { ioError, prepareDir, readFloats, writeFloatsAtomic } from "./files.js";
import { BackgroundWriter } from "./writer.js";

/** Counters of a store; `reset()` starts a new window (e.g. one training step). */
export interface StoreStats {
  /** Bytes read from disk / written to disk since the last reset. */
  bytesRead: number;
  bytesWritten: number;
  /** Tensors paged in from disk / written out since the last reset. */
  pageIns: number;
  writeBacks: number;
  /** Host bytes held now, and the most held since the last reset. */
  hostBytes: number;
  peakHostBytes: number;
  /** Bytes of every tensor in the store, wherever it lives. */
  totalBytes: number;
}

interface Entry {
  length: number;
  /** Host copy, or null when only on disk (or never written: all zeros). */
  host: Float32Array | null;
  /** Host copy differs from the disk copy. */
  dirty: boolean;
  onDisk: boolean;
  pins: number;
  /** Sequence number of its background write still in flight (0: none). */
  pending: number;
}

export interface TieredStoreOptions {
  dir: string;
  /** Host bytes the store may hold (pinned tensors included). */
  hostBytes: number;
  /** fsync each file before its rename (default true). */
  fsync?: boolean;
  /** The setting to raise when the budget is too small (default "offload.hostMemoryGB"). */
  budgetName?: string;
  /**
   * Write evicted tensors from a background thread while the caller computes
   * (default false: written before eviction returns). Their bytes count
   * against hostBytes until the write completes; a failed write is thrown by
   * the next store call.
   */
  asyncWriteBack?: boolean;
}

export class TieredStore {
  readonly dir: string;
  readonly hostBytes: number;
  private readonly entries = new Map<string, Entry>();
  /** Unpinned host-resident tensors, least recently used first (Map order). */
  private readonly lru = new Map<string, Entry>();
  private readonly fsync: boolean;
  private readonly budgetName: string;
  private writer: BackgroundWriter | null;
  /** Background writes not yet reaped: sequence number and bytes (still counted in `held`). */
  private inFlight: { seq: number; bytes: number; entry: Entry }[] = [];
  private held = 0;
  private total = 0;
  private window = { bytesRead: 0, bytesWritten: 0, pageIns: 0, writeBacks: 0, peakHostBytes: 0 };

  constructor(opts: TieredStoreOptions) {
    if (!(opts.hostBytes >= 0) || !Number.isFinite(opts.hostBytes)) {
      throw new OffloadError(
        "INVALID_ARGUMENT",
        `TieredStore: hostBytes must be >= 0, got ${opts.hostBytes}`,
      );
    }
    this.dir = opts.dir;
    this.hostBytes = opts.hostBytes;
    this.fsync = opts.fsync ?? true;
    this.budgetName = opts.budgetName ?? "offload.hostMemoryGB";
    this.writer = opts.asyncWriteBack ? new BackgroundWriter() : null;
    prepareDir(opts.dir);
    // Files of an earlier run are stale: state comes from checkpoints.
    for (const f of readdirSync(opts.dir))
      if (f.endsWith(".f32") || f.includes(".f32.tmp-")) rmSync(path.join(opts.dir, f));
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Elements of tensor `key`. */
  lengthOf(key: string): number {
    return this.need(key).length;
  }

  /**
   * Adds tensor `key` of `length` floats: zeros (no memory or disk until
   * first used), or a copy of `init`. Replaces an existing tensor.
   */
  create(key: string, length: number, init?: Float32Array): void {
    if (init && init.length !== length) {
      throw new OffloadError(
        "INVALID_ARGUMENT",
        `TieredStore.create(${key}): init has ${init.length} elements, length is ${length}`,
      );
    }
    this.drop(key);
    const e: Entry = { length, host: null, dirty: false, onDisk: false, pins: 0, pending: 0 };
    this.entries.set(key, e);
    this.total += length * 4;
    if (init) {
      this.makeRoom(length * 4, key);
      e.host = this.take(length) ?? new Float32Array(length);
      e.host.set(init);
      e.dirty = true;
      this.hold(length * 4);
      this.lru.set(key, e);
    }
  }

  /**
   * The host array of `key`, paged in if needed, pinned until release(). Its
   * contents may be changed in place; say so with release(key, true).
   */
  acquire(key: string): Float32Array {
    const e = this.need(key);
    if (!e.host) {
      if (e.pending) this.waitWrite(e.pending);
      const bytes = e.length * 4;
      this.makeRoom(bytes, key);
      const reused = this.take(e.length);
      e.host = reused ?? new Float32Array(e.length);
      if (reused && !e.onDisk) reused.fill(0);
      if (e.onDisk) {
        readFloats(this.file(key), e.host);
        this.window.bytesRead += bytes;
        this.window.pageIns++;
      }
      this.hold(bytes);
    }
    e.pins++;
    this.lru.delete(key);
    return e.host;
  }

  /** Unpins `key`; `changed` marks its host copy as newer than the disk copy. */
  release(key: string, changed: boolean): void {
    const e = this.need(key);
    if (e.pins === 0) throw new OffloadError("INVALID_ARGUMENT", `TieredStore.release(${key}): not acquired`);
    e.pins--;
    if (changed) e.dirty = true;
    if (e.pins === 0) this.lru.set(key, e);
  }

  /** Writes every changed tensor to disk (host copies stay) and waits for background writes. */
  flush(): void {
    for (const [key, e] of this.entries) if (e.host && e.dirty) this.writeBack(key, e);
    if (this.writer) this.waitWrite(this.writer.posted);
  }

  /** Waits for background write `seq` (and earlier ones), then releases their bytes. */
  private waitWrite(seq: number): void {
    this.writer?.waitFor(seq);
    this.reap();
  }

  /** Releases the bytes of completed background writes; throws the first failure. */
  private reap(): void {
    const w = this.writer;
    if (!w) return;
    const failed = w.failure();
    if (failed) {
      const err = Object.assign(new Error(failed.message), { code: failed.code });
      throw ioError(err, failed.file, "write", failed.bytes);
    }
    const done = w.done();
    if (this.inFlight.length === 0 || (this.inFlight[0] as { seq: number }).seq > done) return;
    const rest: typeof this.inFlight = [];
    for (const f of this.inFlight) {
      if (f.seq <= done) {
        this.held -= f.bytes;
        if (f.entry.pending === f.seq) f.entry.pending = 0;
      } else rest.push(f);
    }
    this.inFlight = rest;
  }

  /** Stops the background writer after waiting for its writes (the store stays usable, writing synchronously). */
  close(): void {
    if (!this.writer) return;
    this.waitWrite(this.writer.posted);
    this.writer.close();
    this.writer = null;
  }

  /** Removes `key` from memory and disk. */
  drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    if (e.pins > 0) throw new OffloadError("INVALID_ARGUMENT", `TieredStore.drop(${key}): still acquired`);
    if (e.pending) this.waitWrite(e.pending);
    if (e.host) this.held -= e.length * 4;
    this.lru.delete(key);
    if (e.onDisk) rmSync(this.file(key), { force: true });
    this.total -= e.length * 4;
    this.entries.delete(key);
  }

  /** Removes every tensor. */
  clear(): void {
    for (const key of [...this.entries.keys()]) this.drop(key);
  }

  stats(): StoreStats {
    this.reap();
    return { ...this.window, hostBytes: this.held, totalBytes: this.total };
  }

  /** Starts a new statistics window. */
  resetStats(): void {
    this.window = { bytesRead: 0, bytesWritten: 0, pageIns: 0, writeBacks: 0, peakHostBytes: this.held };
  }

  private need(key: string): Entry {
    const e = this.entries.get(key);
    if (!e) throw new OffloadError("INVALID_ARGUMENT", `TieredStore: no tensor '${key}'`);
    return e;
  }

  private file(key: string): string {
    return path.join(this.dir, `${encodeURIComponent(key)}.f32`);
  }

  private hold(bytes: number): void {
    this.held += bytes;
    if (this.held > this.window.peakHostBytes) this.window.peakHostBytes = this.held;
  }

  private writeBack(key: string, e: Entry): void {
    writeFloatsAtomic(this.file(key), e.host as Float32Array, this.fsync);
    e.onDisk = true;
    e.dirty = false;
    this.window.bytesWritten += e.length * 4;
    this.window.writeBacks++;
  }

  /** A buffer of `length` floats freed by the last eviction (reused to spare allocation), if any. */
  private take(length: number): Float32Array | null {
    const b = this.spare;
    if (b && b.length === length) {
      this.spare = null;
      return b;
    }
    return null;
  }

  private spare: Float32Array | null = null;

  /** Evicts unpinned tensors, least recently used first, until `bytes` more fit. */
  private makeRoom(bytes: number, forKey: string): void {
    this.spare = null;
    this.reap();
    // With background writes, evict one request's worth ahead: its write then
    // overlaps the caller's work until the next eviction, which waits for it.
    const ahead = this.writer ? bytes : 0;
    let flying = 0;
    for (const f of this.inFlight) flying += f.bytes;
    for (const [key, e] of this.lru) {
      if (this.held - flying + bytes + ahead <= this.hostBytes) break;
      const host = e.host as Float32Array;
      if (e.dirty && this.writer && host.byteOffset === 0 && host.buffer.byteLength === host.byteLength) {
        // Written in the background; its bytes stay counted until the write completes.
        e.pending = this.writer.write(this.file(key), host, this.fsync);
        flying += e.length * 4;
        this.inFlight.push({ seq: e.pending, bytes: e.length * 4, entry: e });
        e.onDisk = true;
        e.dirty = false;
        e.host = null;
        this.window.bytesWritten += e.length * 4;
        this.window.writeBacks++;
        this.lru.delete(key);
        continue;
      }
      if (e.dirty) this.writeBack(key, e);
      this.spare = e.host;
      e.host = null;
      this.held -= e.length * 4;
      this.lru.delete(key);
    }
    // Still short: wait for background writes to free their bytes.
    while (this.held + bytes > this.hostBytes && this.inFlight.length > 0) {
      this.waitWrite((this.inFlight[0] as { seq: number }).seq);
    }
    if (this.held + bytes > this.hostBytes) {
      this.spare = null;
      throw new OffloadError(
        "BUDGET_EXCEEDED",
        `the offload store needs ${gb(this.held + bytes)} of host memory to hold '${forKey}' next to the ` +
          `tensors in use, over its budget of ${gb(this.hostBytes)}; raise ${this.budgetName}`,
      );
    }
  }
}
