import { describe, expect, it } from "vitest";

import { allReduceBucketed, createLocalCommunicator, planBuckets, runSimulated } from "../src/index.js";
import { type ToyArgs, toyReference } from "./ranks/toy_moe.js";
import type { trainStep } from "./ranks/train.js";
import { maxAbsDiff } from "./ranks/util.js";

type Out = Awaited<ReturnType<typeof trainStep>>;

describe("bucket planning", () => {
  it("packs consecutive gradients up to the bucket size; larger ones go alone, in place", () => {
    expect(planBuckets([3, 3, 3, 10, 1, 4], 8)).toEqual([
      { first: 0, end: 2, elements: 6, direct: false },
      { first: 2, end: 3, elements: 3, direct: false },
      { first: 3, end: 4, elements: 10, direct: true },
      { first: 4, end: 6, elements: 5, direct: false },
    ]);
    expect(planBuckets([], 8)).toEqual([]);
    expect(() => planBuckets([1], 0)).toThrow("planBuckets: bucketElements must be an integer >= 1, got 0");
  });

  it("allReduceBucketed on one rank scales in place and counts one allReduce per bucket", async () => {
    const c = createLocalCommunicator();
    const grads = [Float32Array.of(1, 2), Float32Array.of(3), new Float32Array(300_000).fill(2)];
    // bucket of 0.5 MiB = 131072 floats: [g0, g1] packed, g2 alone
    expect(await allReduceBucketed(c, grads, { bucketMb: 0.5, scale: 0.5 })).toBe(2);
    expect([...grads[0]!, ...grads[1]!]).toEqual([0.5, 1, 1.5]);
    expect(grads[2]!.every((v) => v === 1)).toBe(true);
    expect(c.stats().allReduce.calls).toBe(2);
    await expect(allReduceBucketed(c, [new Float64Array(2) as unknown as Float32Array])).rejects.toThrow(
      "allReduceBucketed: grads[0] must be a Float32Array",
    );
  });
});

describe("data + expert parallel gradients of a toy MoE step equal the 1-rank reference", () => {
  const base = { worldSize: 4, experts: 8, dModel: 6, tokens: 10, seed: 5 };
  const reference = toyReference({ ...base, ep: 1 });

  // worldSize 4: ep=1 (pure DP), ep=2 (E+D), ep=4 (pure EP). With ep=4 the
  // expert-data-parallel group has one rank: dividing expert gradients by its
  // size (the DeepSpeed bug) leaves them 4x too large; they must be / dp = 4.
  it.each([1, 2, 4])("ep=%i at world size 4 (simulated)", async (ep) => {
    const args: ToyArgs = { ...base, ep, bucketMb: 16 / (1024 * 1024) }; // 4-float buckets: several allReduces
    const res = await runSimulated<ToyArgs, Out>({
      worldSize: 4,
      module: new URL("./ranks/train.ts", import.meta.url),
      export: "trainStep",
      args,
    });
    for (const o of res) {
      expect(o.sizes).toEqual({ dp: 4, ep, edp: 4 / ep });
      expect(o.scale).toBe(1 / 4);
      expect(maxAbsDiff(o.dg, reference.dg)).toBeLessThan(1e-6);
      o.dW.forEach((w, l) => {
        const ref = reference.dW[o.firstExpert + l]!;
        // The scale itself: sum(dW) / sum(ref) is 1, not ep (the known bug) nor 1/ep.
        const ratio = w.reduce((a, b) => a + b, 0) / ref.reduce((a, b) => a + b, 0);
        expect(ratio).toBeCloseTo(1, 5);
        expect(maxAbsDiff(w, ref)).toBeLessThan(1e-6);
      });
      // 4-float buckets: dg (6 floats) and each of the 8/ep expert matrices (36 floats) go alone.
      expect(o.calls).toEqual({ dense: 1, expert: 8 / ep });
      expect(o.dpAllReduceCalls).toBe(1);
      expect(o.edpAllReduceCalls).toBe(8 / ep);
    }
  });
});
