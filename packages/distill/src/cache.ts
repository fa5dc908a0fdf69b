// The teacher-logit cache: per training batch, the teacher's top-K token ids and
// log-probabilities (temperature T) on each real target token, keyed by the batch's position in
// the data iterator (its `step`: batches that rank's iterator produced before it). A resumed
// run restores the iterator, so it asks for the same keys and reads the same records; each
// record also carries a digest of its batch, checked on every read.
//
// Layout of a cache directory:
//   cache.json                      header: teacher, data, vocabulary, K, T, shard size (checked on open)
//   rank<r>-<first key>.bin         one shard per `recordsPerShard` consecutive keys of rank r
//
// A shard is rewritten whole (temp file, fsync, rename) when flushed, so a killed process
// leaves either the previous shard or the new one, never a torn file. Shard layout (LE):
//    0  "PMKC"  magic                  16  u32 K
//    4  u32 version (1)                20  u32 idBytes (2: V <= 65536, else 4)
//    8  u32 first key                  24  u32 V
//   12  u32 records                    28  u32 reserved
//   32  records x { u32 key, u32 digestLo, u32 digestHi, u32 rows, u32 byteOffset }
//   then per record: ids [rows, K] (idBytes each, padded to 4 bytes), log-probs f32 [rows, K]
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

import { writeFileAtomic } from "@polymoe/train";

import { DistillError } from "./errors.js";
import type { TopKTeacherTargets } from "./kd_loss.js";

export const CACHE_FORMAT = "polymoe-kd-cache";
const MAGIC = 0x504d4b43; // "PMKC"

/** What a cache was made with; a run with different values refuses it. */
export interface CacheIdentity {
  /** The teacher checkpoint directory and a digest of its weights. */
  teacher: { dir: string; digest: string };
  /** The data stream the keys refer to (corpus fingerprint and loader settings, hashed). */
  data: string;
  vocabSize: number;
  topK: number;
  temperature: number;
  rank: number;
  worldSize: number;
}

export interface CacheHeader extends CacheIdentity {
  format: typeof CACHE_FORMAT;
  version: 1;
  recordsPerShard: number;
  created: string;
}

/** A 2 x 32-bit digest of the batch a record belongs to. */
export type BatchDigest = readonly [number, number];

interface Shard {
  first: number;
  records: Map<number, { digest: BatchDigest; targets: TopKTeacherTargets }>;
  dirty: boolean;
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** Records written (flushed) by this process. */
  written: number;
  /** Bytes of shard files written by this process. */
  bytesWritten: number;
}

/** Opens (or creates) a top-K teacher cache; see the file comment. */
export class TopKCache {
  readonly header: CacheHeader;
  readonly stats: CacheStats = { hits: 0, misses: 0, written: 0, bytesWritten: 0 };
  private readonly shards = new Map<number, Shard>();
  private readonly idBytes: 2 | 4;

  private constructor(
    readonly dir: string,
    header: CacheHeader,
  ) {
    this.header = header;
    this.idBytes = header.vocabSize <= 65536 ? 2 : 4;
  }

  /**
   * Opens `dir`: creates it with `identity` when new; refuses (CACHE_MISMATCH) a cache made
   * with another teacher, data stream, vocabulary, K, T or rank layout, naming each difference.
   */
  static open(dir: string, identity: CacheIdentity, opts: { recordsPerShard?: number } = {}): TopKCache {
    const file = path.join(dir, "cache.json");
    if (existsSync(file)) {
      let saved: CacheHeader;
      try {
        saved = JSON.parse(readFileSync(file, "utf8")) as CacheHeader;
      } catch (e) {
        throw new DistillError(
          "CACHE_CORRUPT",
          `${file}: not valid JSON (${(e as Error).message}); delete ${dir}`,
        );
      }
      if (saved.format !== CACHE_FORMAT || saved.version !== 1) {
        throw new DistillError(
          "CACHE_CORRUPT",
          `${file}: format '${saved.format}' v${saved.version}, expected '${CACHE_FORMAT}' v1; use another cache dir`,
        );
      }
      const diffs: string[] = [];
      const cmp = (name: string, a: unknown, b: unknown) => {
        if (JSON.stringify(a) !== JSON.stringify(b))
          diffs.push(`${name} ${JSON.stringify(a)} (this run ${JSON.stringify(b)})`);
      };
      cmp("teacher weights", saved.teacher?.digest, identity.teacher.digest);
      cmp("data stream", saved.data, identity.data);
      cmp("vocabSize", saved.vocabSize, identity.vocabSize);
      cmp("topK", saved.topK, identity.topK);
      cmp("temperature", saved.temperature, identity.temperature);
      cmp("rank", saved.rank, identity.rank);
      cmp("worldSize", saved.worldSize, identity.worldSize);
      if (diffs.length > 0) {
        throw new DistillError(
          "CACHE_MISMATCH",
          `teacher cache ${dir} was written with ${diffs.join(", ")}; point distill.cache.dir elsewhere or delete ${dir}`,
        );
      }
      return new TopKCache(dir, saved);
    }
    const recordsPerShard = opts.recordsPerShard ?? 64;
    if (!Number.isInteger(recordsPerShard) || recordsPerShard < 1) {
      throw new DistillError(
        "INVALID_ARGUMENT",
        `recordsPerShard must be an integer >= 1, got ${recordsPerShard}`,
      );
    }
    if (!Number.isInteger(identity.topK) || identity.topK < 1 || identity.topK > identity.vocabSize) {
      throw new DistillError(
        "INVALID_ARGUMENT",
        `topK must be an integer in [1, ${identity.vocabSize}] (the vocabulary), got ${identity.topK}`,
      );
    }
    mkdirSync(dir, { recursive: true });
    const header: CacheHeader = {
      format: CACHE_FORMAT,
      version: 1,
      ...identity,
      recordsPerShard,
      created: new Date().toISOString(),
    };
    writeFileAtomic(file, [Buffer.from(`${JSON.stringify(header, null, 2)}\n`)]);
    return new TopKCache(dir, header);
  }

  private shardFile(first: number): string {
    return path.join(this.dir, `rank${this.header.rank}-${String(first).padStart(9, "0")}.bin`);
  }

  private shardFor(key: number): Shard {
    const R = this.header.recordsPerShard;
    const first = key - (key % R);
    let s = this.shards.get(first);
    if (!s) {
      // Reads go forward: keep the shard being read or written and drop clean others.
      for (const [f, other] of this.shards) if (!other.dirty) this.shards.delete(f);
      s = { first, records: this.readShard(first), dirty: false };
      this.shards.set(first, s);
    }
    return s;
  }

  private readShard(first: number): Shard["records"] {
    const file = this.shardFile(first);
    const records: Shard["records"] = new Map();
    if (!existsSync(file)) return records;
    const raw = readFileSync(file);
    const buf = new Uint8Array(raw.length);
    buf.set(raw);
    const dv = new DataView(buf.buffer);
    const corrupt = (why: string) =>
      new DistillError(
        "CACHE_CORRUPT",
        `${file}: ${why}; delete the file and its records are computed again`,
      );
    if (buf.length < 32 || dv.getUint32(0, false) !== MAGIC)
      throw corrupt("not a teacher-cache shard (bad magic)");
    if (dv.getUint32(4, true) !== 1) throw corrupt(`version ${dv.getUint32(4, true)}, expected 1`);
    const count = dv.getUint32(12, true);
    const K = dv.getUint32(16, true);
    const idBytes = dv.getUint32(20, true);
    const V = dv.getUint32(24, true);
    if (dv.getUint32(8, true) !== first)
      throw corrupt(`first key ${dv.getUint32(8, true)}, expected ${first}`);
    if (K !== this.header.topK || V !== this.header.vocabSize || idBytes !== this.idBytes) {
      throw corrupt(
        `K ${K}, V ${V}, id bytes ${idBytes}; the header says K ${this.header.topK}, V ${this.header.vocabSize}`,
      );
    }
    if (32 + 20 * count > buf.length)
      throw corrupt(`${buf.length} bytes cannot hold ${count} records: truncated`);
    for (let i = 0; i < count; i++) {
      const at = 32 + 20 * i;
      const key = dv.getUint32(at, true);
      const digest: BatchDigest = [dv.getUint32(at + 4, true), dv.getUint32(at + 8, true)];
      const rows = dv.getUint32(at + 12, true);
      const off = dv.getUint32(at + 16, true);
      const idLen = align4(idBytes * rows * K);
      if (off + idLen + 4 * rows * K > buf.length || off % 4 !== 0) {
        throw corrupt(`record ${key} runs past the end of the file (${buf.length} bytes): truncated`);
      }
      const Ids = idBytes === 2 ? Uint16Array : Uint32Array;
      records.set(key, {
        digest,
        targets: {
          kind: "topk",
          temperature: this.header.temperature,
          rows,
          k: K,
          indices: Int32Array.from(new Ids(buf.buffer, off, rows * K)),
          logProbs: new Float32Array(buf.buffer, off + idLen, rows * K),
        },
      });
    }
    return records;
  }

  /** Whether a record for `key` exists (on disk or pending). */
  has(key: number): boolean {
    return this.shardFor(key).records.has(key);
  }

  /**
   * The record of `key`, or undefined (a miss). CACHE_MISMATCH when the record exists but
   * belongs to another batch (digest differs): the data stream changed under the cache.
   */
  get(key: number, digest: BatchDigest): TopKTeacherTargets | undefined {
    const rec = this.shardFor(key).records.get(key);
    if (!rec) {
      this.stats.misses++;
      return undefined;
    }
    if (rec.digest[0] !== digest[0] || rec.digest[1] !== digest[1]) {
      throw new DistillError(
        "CACHE_MISMATCH",
        `teacher cache ${this.dir}: the record of batch ${key} was computed for another batch (digest ${hex(rec.digest)}, this batch ${hex(digest)}); the data or loader changed: use another distill.cache.dir or delete ${this.dir}`,
      );
    }
    this.stats.hits++;
    return rec.targets;
  }

  /** Stores the record of `key` (written at the next flush). */
  put(key: number, digest: BatchDigest, targets: TopKTeacherTargets): void {
    if (targets.k !== this.header.topK || Math.abs(targets.temperature - this.header.temperature) > 0) {
      throw new DistillError(
        "CACHE_MISMATCH",
        `put: top-${targets.k} targets at temperature ${targets.temperature} into a cache of top-${this.header.topK} at ${this.header.temperature}`,
      );
    }
    if (!Number.isInteger(key) || key < 0 || key > 0xffffffff) {
      throw new DistillError("INVALID_ARGUMENT", `cache keys are integers in [0, 2^32), got ${key}`);
    }
    const s = this.shardFor(key);
    s.records.set(key, { digest: [digest[0], digest[1]], targets });
    s.dirty = true;
  }

  /** Writes every shard with new records (atomically). */
  flush(): void {
    for (const s of this.shards.values()) {
      if (!s.dirty) continue;
      const bytes = this.encodeShard(s);
      writeFileAtomic(this.shardFile(s.first), [bytes]);
      this.stats.bytesWritten += bytes.length;
      this.stats.written += s.records.size;
      s.dirty = false;
    }
  }

  private encodeShard(s: Shard): Uint8Array {
    const K = this.header.topK;
    const keys = [...s.records.keys()].sort((a, b) => a - b);
    let size = 32 + 20 * keys.length;
    for (const k of keys) {
      const rows = (s.records.get(k) as { targets: TopKTeacherTargets }).targets.rows;
      size += align4(this.idBytes * rows * K) + 4 * rows * K;
    }
    const buf = new Uint8Array(size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, MAGIC, false);
    dv.setUint32(4, 1, true);
    dv.setUint32(8, s.first, true);
    dv.setUint32(12, keys.length, true);
    dv.setUint32(16, K, true);
    dv.setUint32(20, this.idBytes, true);
    dv.setUint32(24, this.header.vocabSize, true);
    let off = 32 + 20 * keys.length;
    keys.forEach((key, i) => {
      const { digest, targets: t } = s.records.get(key) as Shard["records"] extends Map<number, infer R>
        ? R
        : never;
      const at = 32 + 20 * i;
      dv.setUint32(at, key, true);
      dv.setUint32(at + 4, digest[0], true);
      dv.setUint32(at + 8, digest[1], true);
      dv.setUint32(at + 12, t.rows, true);
      dv.setUint32(at + 16, off, true);
      const Ids = this.idBytes === 2 ? Uint16Array : Uint32Array;
      new Ids(buf.buffer, off, t.rows * K).set(t.indices);
      off += align4(this.idBytes * t.rows * K);
      new Float32Array(buf.buffer, off, t.rows * K).set(t.logProbs);
      off += 4 * t.rows * K;
    });
    return buf;
  }

  /** Total bytes of this cache's shard files on disk (every rank). */
  diskBytes(): number {
    let n = 0;
    for (const f of readdirSync(this.dir)) if (f.endsWith(".bin")) n += statSync(path.join(this.dir, f)).size;
    return n;
  }
}

const align4 = (n: number) => (n + 3) & ~3;
const hex = (d: BatchDigest) => `${(d[0] >>> 0).toString(16)}${(d[1] >>> 0).toString(16).padStart(8, "0")}`;

/** Digest of what a batch feeds the model (ids, masks, task ids): a record's identity check. */
export function batchDigest(b: {
  srcIds: ArrayLike<number>;
  srcMask: ArrayLike<number>;
  tgtInIds: ArrayLike<number>;
  tgtOutIds: ArrayLike<number>;
  tgtMask: ArrayLike<number>;
  targetLangIds: ArrayLike<number>;
  pairIds: ArrayLike<number>;
  taskTypeIds: ArrayLike<number>;
  size: number;
  srcLen: number;
  tgtLen: number;
}): BatchDigest {
  let h1 = 0x811c9dc5 ^ b.size;
  let h2 = 0x9e3779b9 ^ ((b.srcLen << 16) | b.tgtLen);
  const mix = (arr: ArrayLike<number>) => {
    for (let i = 0; i < arr.length; i++) {
      const v = (arr[i] as number) | 0;
      h1 = Math.imul(h1 ^ v, 16777619);
      h2 = Math.imul(h2 ^ v ^ (h1 >>> 13), 2246822519);
    }
    h1 = Math.imul(h1 ^ arr.length, 16777619);
  };
  for (const arr of [
    b.srcIds,
    b.srcMask,
    b.tgtInIds,
    b.tgtOutIds,
    b.tgtMask,
    b.targetLangIds,
    b.pairIds,
    b.taskTypeIds,
  ])
    mix(arr);
  return [h1 >>> 0, h2 >>> 0];
}
