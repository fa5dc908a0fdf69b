import { describe, expect, it } from "vitest";

import { assignSlots, expertCapacity, Rng } from "../src/index.js";

describe("expertCapacity", () => {
  it("ceil(f * T * k / E), floor at minCapacity, null when dropless", () => {
    expect(expertCapacity(4096, 8, 2, 1.25, 4)).toBe(1280);
    expect(expertCapacity(4096, 32, 2, 1.25, 4)).toBe(320);
    expect(expertCapacity(10, 3, 1, 1, 0)).toBe(4);
    expect(expertCapacity(2, 64, 1, 1, 4)).toBe(4);
    expect(expertCapacity(100, 4, 2, 0, 4)).toBeNull();
    expect(expertCapacity(100, 4, 2, -1, 4)).toBeNull();
  });
});

describe("overflow policies", () => {
  // 6 tokens, top-1, all to expert 0, capacity 2
  const expert = Int32Array.from([0, 0, 0, 0, 0, 0]);

  it("position: the first tokens keep their slots", () => {
    const a = assignSlots(expert, 1, 2, 2, "position", new Rng(1));
    expect(Array.from(a.slot)).toEqual([0, 1, -1, -1, -1, -1]);
    expect(Array.from(a.kept)).toEqual([2, 0]);
    expect(Array.from(a.counts)).toEqual([6, 0]);
  });

  it("score: the highest-scoring tokens keep their slots (ties by position)", () => {
    const score = Float32Array.from([0.1, 0.9, 0.3, 0.9, 0.2, 0.8]);
    const a = assignSlots(expert, 1, 2, 2, "score", new Rng(1), score);
    expect(Array.from(a.slot)).toEqual([-1, 0, -1, 1, -1, -1]);
  });

  it("random (Random Token Selection): seeded, and every token equally likely to keep a slot", () => {
    const a1 = assignSlots(expert, 1, 2, 2, "random", new Rng(5));
    const a2 = assignSlots(expert, 1, 2, 2, "random", new Rng(5));
    expect(Array.from(a1.slot)).toEqual(Array.from(a2.slot));
    const keptTimes = new Array(6).fill(0);
    const rng = new Rng(9);
    const trials = 6000;
    for (let i = 0; i < trials; i++) {
      const a = assignSlots(expert, 1, 2, 2, "random", rng);
      a.slot.forEach((s, t) => {
        if (s >= 0) keptTimes[t]++;
      });
    }
    for (const c of keptTimes) expect(Math.abs(c / trials - 2 / 6)).toBeLessThan(0.03);
  });

  it("random with k=2 keeps every first choice ahead of any second choice", () => {
    // tokens 0..3; first choices all expert 0, second choices all expert 1; expert 1 also first choice of none.
    const ex = Int32Array.from([0, 1, 0, 1, 0, 1, 0, 1]);
    const a = assignSlots(ex, 2, 2, 4, "random", new Rng(3));
    // capacity 4 fits everything
    expect(Array.from(a.slot).every((s) => s >= 0)).toBe(true);
    const b = assignSlots(Int32Array.from([0, 1, 1, 0, 0, 1, 1, 0]), 2, 2, 2, "random", new Rng(3));
    // expert 0: first choices of t0, t2 and second choices of t1, t3 -> the two first choices keep slots
    expect(b.slot[0]).toBeGreaterThanOrEqual(0);
    expect(b.slot[4]).toBeGreaterThanOrEqual(0);
    expect(b.slot[3]).toBe(-1);
    expect(b.slot[7]).toBe(-1);
  });

  it("unrouted pairs (-1) take no slot; dropless capacity is the busiest expert", () => {
    const a = assignSlots(Int32Array.from([1, -1, 1, 0]), 1, 2, null, "position", new Rng(1));
    expect(a.capacity).toBe(2);
    expect(Array.from(a.slot)).toEqual([0, -1, 1, 0]);
  });

  it("Rng state round-trips exactly (for checkpoints)", () => {
    const r = new Rng(42);
    r.next();
    const copy = new Rng(r.state());
    expect([r.next(), r.next()]).toEqual([copy.next(), copy.next()]);
  });
});
