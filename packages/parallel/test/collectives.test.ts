import { describe, expect, it } from "vitest";

import { createLocalCommunicator, ParallelError, runSimulated } from "../src/index.js";

const ranks = (f: string) => new URL(`./ranks/${f}`, import.meta.url);

describe("local communicator (world size 1)", () => {
  it("every collective is the identity on one rank, into fresh or given arrays", async () => {
    const c = createLocalCommunicator();
    expect([c.rank, c.size, c.backend, c.name]).toEqual([0, 1, "local", "world"]);
    const x = Float32Array.of(1, 2, 3);
    expect(await c.allReduce(x)).toBe(x);
    const out = new Float32Array(3);
    expect([...(await c.allReduce(x, { op: "max", out }))]).toEqual([1, 2, 3]);
    expect([...(await c.reduceScatter(x))]).toEqual([1, 2, 3]);
    expect([...(await c.allGather(Int32Array.of(7, 8)))]).toEqual([7, 8]);
    expect([...(await c.allToAll(x))]).toEqual([1, 2, 3]);
    const v = await c.allToAllV(x, { sendCounts: [3] });
    expect([...v.data, ...v.recvCounts]).toEqual([1, 2, 3, 3]);
    expect([...(await c.broadcast(x))]).toEqual([1, 2, 3]);
    await c.barrier();
    const sub = await c.split({ color: 5, name: "sub" });
    expect(sub?.name).toBe("world/sub");
    expect(await c.split({ color: null })).toBeNull();
    const s = c.stats();
    expect(s.allReduce).toEqual({ calls: 2, elements: 6, bytes: 24 });
    expect([s.allGather.calls, s.allToAllV.calls, s.barrier.calls, s.split.calls]).toEqual([1, 1, 1, 2]);
    c.resetStats();
    expect(c.stats().allReduce.calls).toBe(0);
  });

  it("bad input rejects with a ParallelError naming the argument, actual vs expected", async () => {
    const c = createLocalCommunicator();
    const cases: [Promise<unknown>, RegExp][] = [
      [
        c.allReduce(new Uint8Array(2) as unknown as Float32Array),
        /buf must be a Float32Array, Float64Array or Int32Array, got Uint8Array/,
      ],
      [
        c.allReduce([1, 2] as unknown as Float32Array),
        /got a plain Array \(wrap it: new Float32Array\(values\)\)/,
      ],
      [
        c.allReduce(new Float32Array(4), { out: new Float32Array(3) }),
        /out has 3 elements, needs 4 \(too small\)/,
      ],
      [
        c.allReduce(new Float32Array(4), { out: new Int32Array(4) as unknown as Float32Array }),
        /out is a Int32Array but the input is a Float32Array/,
      ],
      [c.allGather(new Float32Array(4), { out: new Float32Array(8) }), /out has 8 elements, needs 4/],
      [
        c.allReduce(new Float32Array(2), { op: "avg" as "sum" }),
        /op must be one of sum, max, min; got 'avg'/,
      ],
      [c.broadcast(new Float32Array(2), { root: 1 }), /root 1 is not a rank of this group \(0..0\)/],
      [
        c.allToAllV(new Float32Array(2), { sendCounts: [3] }),
        /sendCounts add up to 3 but send has 2 elements/,
      ],
      [
        c.allToAllV(new Float32Array(2), { sendCounts: [1, 1] }),
        /sendCounts has 2 entries, needs one per rank \(1\)/,
      ],
    ];
    for (const [p, re] of cases) {
      const e = await p.then(
        () => null,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(ParallelError);
      expect((e as ParallelError).code).toBe("INVALID_ARGUMENT");
      expect((e as Error).message).toMatch(re);
    }
    const buf = new Float32Array(8);
    await expect(c.allGather(buf.subarray(0, 4), { out: buf.subarray(2, 6) })).rejects.toThrow(
      /overlaps the input/,
    );
    const sub = await c.split({ color: 0 });
    sub!.free();
    await expect(sub!.barrier()).rejects.toMatchObject({ code: "COMM_CLOSED" });
  });
});

describe.each([2, 4])("simulated backend, world size %i", (worldSize) => {
  it("every collective gives the literal expected values and is counted", async () => {
    const res = await runSimulated<undefined, Record<string, unknown>>({
      worldSize,
      module: ranks("collectives.ts"),
      export: "collectives",
    });
    const p = worldSize;
    const R = [...Array(p).keys()];
    const tri = (n: number) => (n * (n + 1)) / 2;
    res.forEach((o, r) => {
      expect(o.rank).toBe(r);
      expect(o.sumF32).toEqual([tri(p), -tri(p), 0.5 * tri(p - 1)]);
      expect((o.maxF32 as number[]).map((x) => x + 0)).toEqual([p - 1, 0]); // -0 -> 0
      expect(o.minF32).toEqual([0, -(p - 1)]);
      expect(o.sumI32).toEqual([tri(p - 1), 100 * p]);
      expect(o.inputUntouched).toEqual([r, 100]);
      expect((o.sumF64 as number[])[0]).toBeCloseTo(0.1 * tri(p), 12);
      expect(o.reduceScatter).toEqual([R.reduce((a, q) => a + 10 * q + r, 0), p]);
      expect(o.allGather).toEqual(R.flatMap((q) => [q, q * q]));
      expect(o.allToAll).toEqual(R.map((q) => 100 * q + r));
      expect(o.allToAllV).toEqual(R.flatMap((q) => Array(r + 1).fill(10 * q + r)));
      expect(o.allToAllVCounts).toEqual(R.map(() => r + 1));
      expect(o.broadcast).toEqual([p - 1, p - 1]);
      const same = R.filter((q) => q % 2 === r % 2);
      expect(o.subSize).toBe(same.length);
      expect(o.subRank).toBe([...same].reverse().indexOf(r)); // key = -rank reverses the order
      expect(o.subName).toBe("world/parity");
      expect(o.subSum).toEqual([same.reduce((a, b) => a + b, 0)]);
      expect(o.optOut).toBe(r === 0 ? "null" : `size ${p - 1}`);
      expect(o.concurrent).toEqual([0, 1, 2, 3].map((k) => k * tri(p)));
      // allReduce, reduceScatter, allGather, allToAll, allToAllV, broadcast, barrier, split
      expect(o.calls).toEqual([9, 1, 1, 1, 1, 1, 1, 2]); // subSum ran on the sub-communicator
      expect(o.allReduceBytes).toBe(4 * 3 + 4 * 2 + 4 * 2 + 4 * 2 + 8 + 4 * 4);
    });
  });
});

describe("simulated backend: bad input across ranks is an error on every rank, never a hang", () => {
  it("mismatched lengths, types, ops, kinds, roots, counts and too-small buffers", async () => {
    const res = await runSimulated<undefined, Record<string, { code: string; message: string } | null>>({
      worldSize: 3,
      module: ranks("mismatch.ts"),
      export: "mismatches",
    });
    const msg = (r: number, k: string) => res[r]![k]!;
    for (let r = 0; r < 3; r++) {
      expect(msg(r, "length")).toEqual({
        code: "RANK_MISMATCH",
        message:
          "allReduce #1 on 'world' (3 ranks): lengths differ across ranks (rank 0: 4, rank 1: 3, rank 2: 4); every rank must pass the same number of elements",
      });
      expect(msg(r, "dtype").message).toMatch(
        /element types differ across ranks \(rank 0: Float32Array, rank 1: Int32Array, rank 2: Float32Array\)/,
      );
      expect(msg(r, "op").message).toMatch(
        /reduce op differs across ranks \(rank 0: max, rank 1: sum, rank 2: sum\)/,
      );
      expect(msg(r, "kind").message).toMatch(
        /ranks called different collectives \(rank 0: allGather, rank 1: allReduce, rank 2: allReduce\)/,
      );
      expect(msg(r, "root").message).toMatch(/root differs across ranks \(rank 0: 0, rank 1: 1, rank 2: 1\)/);
      expect(msg(r, "indivisible").message).toMatch(
        /reduceScatter #\d+ on 'world' \(3 ranks\): rank 0 passed invalid arguments/,
      );
      expect(msg(r, "recvCounts").message).toMatch(
        /allToAllV #\d+ on 'world' \(3 ranks\): rank 0 passed invalid arguments/,
      );
      expect(msg(r, "sendCountsSum").message).toMatch(/rank 1 passed invalid arguments/);
      expect(res[r]!.after).toEqual([3]);
    }
    // The rank at fault gets the local detail; its peers are pointed to it.
    expect(msg(1, "tooSmallOut")).toEqual({
      code: "INVALID_ARGUMENT",
      message:
        "allGather #6 on 'world' (3 ranks): rank 1 passed invalid arguments: out has 3 elements, needs 6 (too small)",
    });
    expect(msg(0, "tooSmallOut")).toEqual({
      code: "RANK_MISMATCH",
      message: "allGather #6 on 'world' (3 ranks): rank 1 passed invalid arguments (see that rank's error)",
    });
    expect(msg(1, "wrongType").message).toMatch(
      /buf must be a Float32Array, Float64Array or Int32Array, got Uint8Array/,
    );
    expect(msg(1, "plainArray").message).toMatch(/got a plain Array/);
    expect(msg(0, "recvCounts").message).toMatch(
      /recvCounts disagree with what the ranks send: from rank 1 expected 2, it sends 1/,
    );
    expect(msg(1, "sendCountsSum").message).toMatch(/sendCounts add up to 3 but send has 4 elements/);
  });

  it("a rank that skips a collective makes its peers fail with TIMEOUT naming it", async () => {
    const res = await runSimulated<undefined, { code: string; message: string } | null>({
      worldSize: 3,
      module: ranks("mismatch.ts"),
      export: "skip",
      timeoutMs: 400,
    });
    expect(res[1]).toBeNull();
    expect(res[0]!.code).toBe("TIMEOUT");
    expect(res[0]!.message).toMatch(
      /allReduce #1 on 'world' \(3 ranks\): simulated rank 0 waited 400 ms for world rank 1/,
    );
  });

  it("a rank that throws stops the run, and the error names it", async () => {
    await expect(
      runSimulated({ worldSize: 3, module: ranks("mismatch.ts"), export: "crash" }),
    ).rejects.toThrow(/simulated rank 2: boom in the rank function/);
    await expect(
      runSimulated({ worldSize: 2, module: ranks("mismatch.ts"), export: "nope" }),
    ).rejects.toThrow(/has no exported function 'nope' \(functions: crash, mismatches, skip\)/);
  });
});
