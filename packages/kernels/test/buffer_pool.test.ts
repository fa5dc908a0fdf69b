// The output-buffer pool alone: size classes, reuse, LRU eviction under the
// capacity, and the rules that keep user-visible storage out of it.
import { describe, expect, it } from "vitest";

import { BufferPool } from "../src/buffer_pool.js";

describe("BufferPool", () => {
  it("rounds requests up to four size classes per power of two (literal values)", () => {
    const classes = [1024, 1025, 1280, 1281, 1536, 2047, 2048, 2049, 3000, 100_000].map(
      (n) => BufferPool.classBytes(n) / 4,
    );
    expect(classes).toEqual([1024, 1280, 1280, 1536, 1536, 2048, 2048, 2560, 3072, 114_688]);
    for (let n = 5; n < 70_000; n += 37) {
      const c = BufferPool.classBytes(n) / 4;
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c).toBeLessThanOrEqual(n * 1.25);
    }
  });

  it("nearby shapes share a released buffer; the view has the requested length", () => {
    const pool = new BufferPool(1 << 20, 16);
    const a = pool.alloc(1100); // class 1280
    pool.retain(a);
    pool.release(a);
    const b = pool.alloc(1200); // same class: the same storage
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(1200);
    expect(pool.stats()).toMatchObject({ hits: 1, misses: 1, pooledBytes: 0 });
  });

  it("evicts the least recently released buffers to stay under its capacity", () => {
    const pool = new BufferPool(3 * 4096 * 4, 16); // room for three 4096-element buffers
    const bufs = [1, 2, 3, 4].map(() => pool.alloc(4096));
    for (const b of bufs) pool.retain(b);
    for (const b of bufs) pool.release(b); // the fourth evicts the first
    expect(pool.stats()).toMatchObject({ pooledBytes: 3 * 4096 * 4, idleBuffers: 3, evicted: 1 });
    const got = [pool.alloc(4096), pool.alloc(4096), pool.alloc(4096)].map((x) => x.buffer);
    expect(got).toEqual([bufs[3]!.buffer, bufs[2]!.buffer, bufs[1]!.buffer]); // most recent first
    expect(pool.alloc(4096).buffer).not.toBe(bufs[0]!.buffer);
  });

  it("never recycles exposed storage, storage still referenced, or buffers larger than the pool", () => {
    const pool = new BufferPool(8192 * 4, 16);
    const shared = pool.alloc(2048);
    pool.retain(shared);
    pool.retain(shared); // a slice view shares it
    pool.release(shared);
    expect(pool.stats().idleBuffers).toBe(0);
    pool.release(shared);
    expect(pool.stats().idleBuffers).toBe(1);

    const shown = pool.alloc(4096);
    pool.retain(shown);
    pool.expose(shown);
    pool.release(shown);
    const big = pool.alloc(16_384);
    pool.retain(big);
    pool.release(big);
    expect(pool.stats()).toMatchObject({ idleBuffers: 1, pooledBytes: 2048 * 4 });
    expect(pool.alloc(3)).toHaveLength(3); // below minElements: a plain array
    pool.clear();
    expect(pool.stats()).toMatchObject({ idleBuffers: 0, pooledBytes: 0 });
  });
});
