import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

import { OffloadError, TieredStore } from "../src/index.js";
import { rand, tempDir } from "./helpers.js";

describe("TieredStore", () => {
  it("keeps tensors on the host under the budget and pages the rest through disk, values intact", () => {
    const dir = tempDir();
    // Room for two 1000-float tensors on the host.
    const store = new TieredStore({ dir, hostBytes: 8000 });
    const init = [rand(1000, 1), rand(1000, 2), rand(1000, 3)];
    init.forEach((x, i) => {
      store.create(`t${i}`, 1000, x);
    });
    // The third create evicted t0 (least recently used), written atomically.
    let s = store.stats();
    expect(s.hostBytes).toBe(8000);
    expect(s.totalBytes).toBe(12000);
    expect(s.writeBacks).toBe(1);
    expect(s.bytesWritten).toBe(4000);
    expect(readdirSync(dir)).toEqual([`${encodeURIComponent("t0")}.f32`]);
    store.resetStats();
    // Reading t0 back evicts t1 (written) and reads 4000 bytes.
    const t0 = store.acquire("t0");
    expect(Array.from(t0)).toEqual(Array.from(init[0]!));
    t0[0] = 42;
    store.release("t0", true);
    s = store.stats();
    expect([s.bytesRead, s.pageIns, s.bytesWritten, s.writeBacks]).toEqual([4000, 1, 4000, 1]);
    for (let k = 0; k < 3; k++) {
      const x = store.acquire(`t${k}`);
      const want = Float32Array.from(init[k]!);
      if (k === 0) want[0] = 42;
      expect(Array.from(x)).toEqual(Array.from(want));
      store.release(`t${k}`, false);
    }
    // No temporary file is ever left behind.
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
    store.clear();
    expect(readdirSync(dir)).toEqual([]);
    expect(store.stats().hostBytes).toBe(0);
  });

  it("a tensor never written is zeros and costs no disk; a clean tensor is not written twice", () => {
    const dir = tempDir();
    const store = new TieredStore({ dir, hostBytes: 400 });
    store.create("z", 100);
    expect(store.stats().hostBytes).toBe(0);
    const z = store.acquire("z");
    expect(z.every((x) => x === 0)).toBe(true);
    store.release("z", false);
    store.create("y", 100, rand(100, 9)); // evicts z: unchanged and never on disk, so nothing written
    expect(store.stats().bytesWritten).toBe(0);
    expect(store.acquire("z").every((x) => x === 0)).toBe(true);
    store.release("z", false);
  });

  it("refuses to exceed its budget with tensors in use, naming the figure needed", () => {
    const store = new TieredStore({ dir: tempDir(), hostBytes: 4000 });
    store.create("a", 600);
    store.create("b", 600);
    store.acquire("a");
    expect(() => store.acquire("b")).toThrow(
      new OffloadError(
        "BUDGET_EXCEEDED",
        "the offload store needs 0.0000045 GB (4800 bytes) of host memory to hold 'b' next to the tensors in use, over its budget of 0.0000037 GB (4000 bytes); raise offload.hostMemoryGB",
      ),
    );
    expect(() => store.release("b", false)).toThrow(/not acquired/);
    expect(() => store.acquire("nope")).toThrow(/no tensor 'nope'/);
  });

  it("names a file changed behind its back", () => {
    const dir = tempDir();
    const store = new TieredStore({ dir, hostBytes: 400 });
    store.create("a", 100, rand(100, 1));
    store.create("b", 100, rand(100, 2)); // a goes to disk
    writeFileSync(path.join(dir, "a.f32"), Buffer.alloc(12));
    expect(() => store.acquire("a")).toThrow(/a\.f32 holds 12 bytes but its tensor needs 400/);
  });

  it("an unwritable directory is a clear error naming it", () => {
    const base = tempDir();
    writeFileSync(path.join(base, "file"), "x");
    const dir = path.join(base, "file", "offload");
    expect(() => new TieredStore({ dir, hostBytes: 1000 })).toThrow(
      new OffloadError(
        "DIR_UNWRITABLE",
        `offload.dir ${dir} cannot be created (ENOTDIR); choose a directory this user can write to`,
      ),
    );
  });

  it("removes stale tensor files of an earlier run (state comes from checkpoints)", () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "old.f32"), Buffer.alloc(8));
    writeFileSync(path.join(dir, "old.f32.tmp-123"), Buffer.alloc(3));
    writeFileSync(path.join(dir, "keep.txt"), "x");
    new TieredStore({ dir, hostBytes: 10 });
    expect(readdirSync(dir)).toEqual(["keep.txt"]);
  });

  // A real full disk: a 64 KiB tmpfs (needs root to mount; skipped otherwise).
  const root = process.getuid?.() === 0;
  it.skipIf(!root)(
    `a full disk is a clear error naming the bytes${root ? "" : " [skipped: needs root to mount a tmpfs]"}`,
    () => {
      const dir = tempDir("offload-full-");
      const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]);
      if (mount.status !== 0) return; // no mount permission in this container
      try {
        const store = new TieredStore({ dir, hostBytes: 4 * 20_000 });
        store.create("big", 20_000, rand(20_000, 1)); // 80 KB > 64 KiB
        store.create("x", 20_000, rand(20_000, 2)); // evicts big -> disk full
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(OffloadError);
        expect((e as OffloadError).code).toBe("DISK_FULL");
        expect((e as Error).message).toMatch(
          new RegExp(
            `offload.dir ${dir} is full: writing 80000 bytes to big.f32 failed \\(ENOSPC\\); .* GB .*free`,
          ),
        );
        expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
      } finally {
        spawnSync("umount", [dir]);
        rmSync(dir, { recursive: true, force: true });
      }
      expect(statSync(path.dirname(dir)).isDirectory()).toBe(true);
    },
  );
});
