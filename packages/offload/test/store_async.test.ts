import { existsSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

import { TieredStore } from "../src/index.js";
import { rand, tempDir } from "./helpers.js";

describe("TieredStore with background write-back", () => {
  it("pages through disk with the same values, never holding more than its budget, in-flight writes included", () => {
    const dir = tempDir();
    // Room for three 1000-float tensors; twelve tensors cycled through it, changed each time.
    const store = new TieredStore({ dir, hostBytes: 12000, asyncWriteBack: true, fsync: true });
    const want = Array.from({ length: 12 }, (_, i) => rand(1000, i + 1));
    want.forEach((x, i) => {
      store.create(`t${i}`, 1000, x);
    });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 12; i++) {
        const x = store.acquire(`t${i}`);
        expect(Array.from(x)).toEqual(Array.from(want[i]!));
        for (let j = 0; j < 1000; j += 97) x[j] = (x[j] as number) + 1;
        want[i] = Float32Array.from(x);
        store.release(`t${i}`, true);
      }
    }
    const s = store.stats();
    expect(s.peakHostBytes).toBeLessThanOrEqual(12000);
    expect(s.writeBacks).toBeGreaterThan(30);
    store.flush();
    // Every write landed atomically: no temporary files, each file the tensor's size.
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
    for (let i = 0; i < 12; i++) {
      const x = store.acquire(`t${i}`);
      expect(Array.from(x)).toEqual(Array.from(want[i]!));
      store.release(`t${i}`, false);
    }
    store.close();
    store.clear();
    expect(readdirSync(dir)).toEqual([]);
  });

  it("a background write that fails is thrown by the next store call, naming the file", () => {
    const dir = tempDir();
    const store = new TieredStore({ dir, hostBytes: 8000, asyncWriteBack: true });
    store.create("a", 1000, rand(1000, 1));
    store.create("b", 1000, rand(1000, 2));
    rmSync(dir, { recursive: true, force: true }); // the directory disappears under the store
    expect(existsSync(dir)).toBe(false);
    expect(() => {
      for (let i = 0; i < 4; i++) store.create(`c${i}`, 1000, rand(1000, 3 + i));
      store.flush();
    }).toThrow(new RegExp(`${path.basename(dir)}.*|ENOENT`));
  });
});
