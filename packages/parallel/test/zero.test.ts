import { describe, expect, it } from "vitest";

import {
  createLocalCommunicator,
  flatOffsets,
  partitionFlat,
  runSimulated,
  ZeroGroup,
} from "../src/index.js";
import { maxAbsDiff, randomArray } from "./ranks/util.js";
import { adamUpdate, syntheticGrad, type ZeroArgs, type zeroTrain } from "./ranks/zero.js";

type Out = Awaited<ReturnType<typeof zeroTrain>>;

describe("ZeRO partition math", () => {
  it("splits a flat buffer into equal aligned shards with zero padding at the end", () => {
    expect(partitionFlat(10, 4)).toEqual({
      numel: 10,
      groupSize: 4,
      shardSize: 3,
      paddedNumel: 12,
      ranges: [
        { start: 0, end: 3 },
        { start: 3, end: 6 },
        { start: 6, end: 9 },
        { start: 9, end: 12 },
      ],
    });
    expect(partitionFlat(10, 4, { alignElements: 4 }).shardSize).toBe(4);
    expect(partitionFlat(0, 2).paddedNumel).toBe(0);
    expect(() => partitionFlat(10, 0)).toThrow("partitionFlat: groupSize must be an integer >= 1, got 0");
    expect(flatOffsets([2, 0, 5])).toEqual({ offsets: [0, 2, 2], numel: 7 });
  });

  it("parameter and gradient views alias the flat buffers", () => {
    const z = new ZeroGroup({ comm: createLocalCommunicator(), stage: 2, sizes: [3, 2], gradScale: 1 });
    z.paramViews[1]!.set([7, 8]);
    expect([...z.params.subarray(0, 5)]).toEqual([0, 0, 0, 7, 8]);
    expect(z.params.length).toBe(16); // aligned to 16
    expect(z.paramShard.length).toBe(16);
    expect(
      () => new ZeroGroup({ comm: createLocalCommunicator(), stage: 3 as 1, sizes: [1], gradScale: 1 }),
    ).toThrow("ZeroGroup: stage must be 1 or 2, got 3");
  });
});

/** One process, full buffers: Adam on the mean gradient. */
function reference(args: ZeroArgs, worldSize: number, which: "dense" | "expert", epIndex: number): number[] {
  const sizes = which === "dense" ? args.denseSizes : args.expertSizes;
  const n = sizes.reduce((a, b) => a + b, 0);
  const params = randomArray(n, which === "dense" ? 7 : 8 + epIndex);
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  // Dense: every dp rank; expert: the dp ranks holding this ep index. Both / dp.
  const members = [...Array(worldSize).keys()].filter((r) => which === "dense" || r % args.ep === epIndex);
  for (let step = 1; step <= args.steps; step++) {
    const g = new Float32Array(n);
    for (const r of members) {
      const gr = syntheticGrad(params, sizes, r, step, which === "dense" ? 0 : 1 + epIndex);
      for (let i = 0; i < n; i++) g[i]! += gr[i]!;
    }
    for (let i = 0; i < n; i++) g[i]! *= 1 / worldSize;
    adamUpdate(params, g, m, v, step);
  }
  return [...params];
}

describe.each([1, 2] as const)(
  "ZeRO stage %i with Adam over 4 simulated ranks equals full Adam on 1 rank",
  (stage) => {
    it("dense over dp=4 and experts over edp=2 (ep=2), 3 steps", async () => {
      const args: ZeroArgs = { stage, ep: 2, denseSizes: [5, 17, 3], expertSizes: [11, 4], steps: 3 };
      const res = await runSimulated<ZeroArgs, Out>({
        worldSize: 4,
        module: new URL("./ranks/zero.ts", import.meta.url),
        export: "zeroTrain",
        args,
      });
      const dense = reference(args, 4, "dense", 0);
      for (const o of res) {
        expect(maxAbsDiff(o.dense, dense)).toBeLessThan(1e-6);
        expect(maxAbsDiff(o.expert, reference(args, 4, "expert", o.epIndex))).toBeLessThan(1e-6);
        expect(o.paddingZero).toBe(true);
        expect(o.shardSizes).toEqual([16, 16]); // ceil(25/4)=7 and ceil(15/2)=8, aligned to 16
        // Stage 1 all-reduces whole gradients; stage 2 reduce-scatters them. Both all-gather parameters.
        expect(o.calls).toEqual(
          stage === 1
            ? { dpAllReduce: 3, dpReduceScatter: 0, dpAllGather: 3 }
            : { dpAllReduce: 0, dpReduceScatter: 3, dpAllGather: 3 },
        );
      }
      // The ep=0 and ep=1 experts really differ, so the per-group reference is meaningful.
      expect(maxAbsDiff(res[0]!.expert, res[1]!.expert)).toBeGreaterThan(0.1);
    });
  },
);
