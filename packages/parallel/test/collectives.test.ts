import { describe, expect, it } from "vitest";

import { commBuffer, createLocalCommunicator, ParallelError, runSimulated } from "../src/index.js";
import { checkBlocking, checkCollectives, checkMismatches } from "./ranks/expectations.js";

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
    expect(() => sub!.allReduceSync(Float32Array.of(1))).toThrow(
      /allReduceSync on 'world\/split1': the communicator was freed/,
    );
  });

  it("blocking collectives on one rank are copies, with the same argument checks", () => {
    const c = createLocalCommunicator();
    const x = Float32Array.of(1, 2);
    expect(c.allReduceSync(x)).toBe(x);
    expect([...c.allGatherSync(x)]).toEqual([1, 2]);
    expect([...c.allToAllSync(x)]).toEqual([1, 2]);
    expect([...c.allToAllVSync(x, { sendCounts: [2] }).data]).toEqual([1, 2]);
    expect(() => c.allReduceSync(x, { op: "avg" as "sum" })).toThrow(
      /allReduceSync #5 on 'world' \(1 ranks\): op must be one of sum, max, min; got 'avg'/,
    );
    expect(c.stats().allReduce.calls).toBe(1);
  });
});

describe.each([2, 4])("simulated backend, world size %i", (worldSize) => {
  it("every collective gives the literal expected values and is counted", async () => {
    const res = await runSimulated<undefined, Record<string, unknown>>({
      worldSize,
      module: ranks("collectives.ts"),
      export: "collectives",
    });
    checkCollectives(res, worldSize);
  });

  it("blocking collectives give the same values; refused while an async one is pending", async () => {
    const res = await runSimulated<undefined, Record<string, unknown>>({
      worldSize,
      module: ranks("collectives.ts"),
      export: "blockingCollectives",
    });
    checkBlocking(res, worldSize);
  });
});

describe("simulated backend: bad input across ranks is an error on every rank, never a hang", () => {
  it("mismatched lengths, types, ops, kinds, roots, counts and too-small buffers", async () => {
    const res = await runSimulated<undefined, Record<string, { code: string; message: string } | null>>({
      worldSize: 3,
      module: ranks("mismatch.ts"),
      export: "mismatches",
    });
    checkMismatches(res);
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

describe("commBuffer", () => {
  it("gives zeroed typed arrays of the asked type and length, usable by collectives", async () => {
    const f = commBuffer(1000);
    expect(f).toBeInstanceOf(Float32Array);
    expect(f.length).toBe(1000);
    expect(f.every((v) => v === 0)).toBe(true);
    const i = commBuffer(3, Int32Array);
    expect(i).toBeInstanceOf(Int32Array);
    f.fill(2);
    expect((await createLocalCommunicator().allReduce(f))[999]).toBe(2);
    expect(commBuffer(0).length).toBe(0);
    expect(() => commBuffer(-1)).toThrow("commBuffer: length must be a non-negative integer, got -1");
  });
});
