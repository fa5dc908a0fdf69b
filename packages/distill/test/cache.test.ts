import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";

import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";

import {
  batchDigest,
  type CacheIdentity,
  DistillError,
  TopKCache,
  type TopKTeacherTargets,
  topKTargets,
} from "../src/index.js";
import { KeyedSource, tempDir } from "./fixture.js";
import { assertNoLeak, rand } from "./helpers.js";

const V = 300;
const K = 5;
const identity: CacheIdentity = {
  teacher: { dir: "/t", digest: "abc" },
  data: "data-1",
  vocabSize: V,
  topK: K,
  temperature: 2,
  rank: 0,
  worldSize: 1,
};

/** Top-K targets of random logits for a batch of `rows` positions, some padded. */
function record(seed: number, rows: number): { targets: TopKTeacherTargets; digest: [number, number] } {
  const mask = Array.from({ length: rows }, (_, i) => (i % 5 === 4 ? 0 : 1));
  const targets = assertNoLeak(() => {
    const logits = tf.tensor2d(rand(rows * V, seed, 6), [rows, V]);
    const t = topKTargets(logits, mask, 2, K);
    logits.dispose();
    return t;
  });
  return { targets, digest: [seed * 3 + 1, seed * 7 + 2] };
}

describe("top-k teacher cache", () => {
  it("round-trips records exactly across shards, partial shards and a reopen; files are written atomically", () => {
    const dir = tempDir();
    const recs = Array.from({ length: 11 }, (_, key) => record(100 + key, 3 + (key % 4) * 5));
    const a = TopKCache.open(dir, identity, { recordsPerShard: 4 });
    for (const [key, r] of recs.slice(0, 6).entries()) a.put(key, r.digest, r.targets);
    a.flush(); // shard 0 complete, shard 4 partial (keys 4, 5)
    const b = TopKCache.open(dir, identity);
    expect(b.header.recordsPerShard).toBe(4);
    for (let key = 6; key < 11; key++) {
      expect(b.get(key, recs[key]!.digest)).toBeUndefined();
      b.put(key, recs[key]!.digest, recs[key]!.targets);
    }
    b.flush(); // rewrites shard 4 with keys 4..7, writes shard 8 (keys 8..10)
    expect(b.stats).toMatchObject({ misses: 5, written: 7 });
    const files = readdirSync(dir).sort();
    expect(files).toEqual([
      "cache.json",
      "rank0-000000000.bin",
      "rank0-000000004.bin",
      "rank0-000000008.bin",
    ]);
    const c = TopKCache.open(dir, identity);
    for (const [key, r] of recs.entries()) {
      const got = c.get(key, r.digest)!;
      expect(got.rows).toBe(r.targets.rows);
      expect(got.k).toBe(K);
      expect(got.temperature).toBe(2);
      expect(Array.from(got.indices)).toEqual(Array.from(r.targets.indices));
      expect(Array.from(got.logProbs)).toEqual(Array.from(r.targets.logProbs)); // bit for bit
    }
    expect(c.stats.hits).toBe(11);
    // Size: 32 header bytes per shard, 20 per record, then K ids (2 bytes: V <= 65536) and K floats per row.
    const rows = recs.reduce((s, r) => s + r.targets.rows, 0);
    const pad = recs.reduce((s, r) => s + (((2 * K * r.targets.rows + 3) & ~3) - 2 * K * r.targets.rows), 0);
    expect(c.diskBytes()).toBe(3 * 32 + 11 * 20 + rows * K * (2 + 4) + pad);
  });

  it("refuses a cache written with another teacher, data stream, K or temperature, naming each difference", () => {
    const dir = tempDir();
    TopKCache.open(dir, identity);
    const err = (() => {
      try {
        TopKCache.open(dir, { ...identity, topK: 8, temperature: 1, teacher: { dir: "/t", digest: "zzz" } });
      } catch (e) {
        return e as DistillError;
      }
      throw new Error("expected an error");
    })();
    expect(err).toBeInstanceOf(DistillError);
    expect(err.code).toBe("CACHE_MISMATCH");
    expect(err.message).toMatch(
      /teacher weights "abc" \(this run "zzz"\), topK 5 \(this run 8\), temperature 2 \(this run 1\)/,
    );
    expect(err.message).not.toContain("\n");
    expect(() => TopKCache.open(dir, { ...identity, data: "data-2" })).toThrow(
      /data stream "data-1" \(this run "data-2"\)/,
    );
  });

  it("refuses a record of another batch (the data changed under the cache)", () => {
    const dir = tempDir();
    const c = TopKCache.open(dir, identity);
    const r = record(1, 4);
    c.put(0, r.digest, r.targets);
    expect(() => c.get(0, [9, 9])).toThrow(/the record of batch 0 was computed for another batch/);
    // Batch digests: equal for equal batches, different for different ones.
    const src = new KeyedSource();
    expect(batchDigest(src.make(3))).toEqual(batchDigest(src.make(3)));
    expect(batchDigest(src.make(3))).not.toEqual(batchDigest(src.make(4)));
  });

  it("names a damaged shard and says how to recover", () => {
    const dir = tempDir();
    const c = TopKCache.open(dir, identity, { recordsPerShard: 2 });
    const r = record(2, 9);
    c.put(0, r.digest, r.targets);
    c.put(1, r.digest, r.targets);
    c.flush();
    const file = path.join(dir, "rank0-000000000.bin");
    truncateSync(file, statSync(file).size - 10);
    expect(() => TopKCache.open(dir, identity).get(0, r.digest)).toThrow(
      new RegExp(`${file}: record 1 runs past the end of the file .*: truncated; delete the file`),
    );
    writeFileSync(file, Buffer.from("garbage that is not a shard at all......"));
    expect(() => TopKCache.open(dir, identity).get(0, r.digest)).toThrow(/bad magic/);
    writeFileSync(path.join(dir, "cache.json"), "{");
    expect(() => TopKCache.open(dir, identity)).toThrow(/cache.json: not valid JSON/);
    expect(readFileSync(path.join(dir, "cache.json"), "utf8")).toBe("{");
  });

  it("checks its arguments", () => {
    expect(() => TopKCache.open(tempDir(), { ...identity, topK: 0 })).toThrow(
      /topK must be an integer in \[1, 300\]/,
    );
    expect(() => TopKCache.open(tempDir(), identity, { recordsPerShard: 0 })).toThrow(
      /recordsPerShard must be/,
    );
    const c = TopKCache.open(tempDir(), identity);
    const r = record(3, 2);
    expect(() => c.put(0, r.digest, { ...r.targets, k: 4 })).toThrow(
      /top-4 targets .* into a cache of top-5/,
    );
  });
});
