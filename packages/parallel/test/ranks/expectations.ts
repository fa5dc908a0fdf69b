// Expectations shared by the simulated tests (test/) and the mpirun tests (test-mpi/).
import { expect } from "vitest";

type Mismatch = Record<string, { code: string; message: string } | null | number[]>;

/** Literal expected values of ranks/collectives.ts at world size p. */
export function checkCollectives(res: Record<string, unknown>[], worldSize: number): void {
  expect(res.length).toBe(worldSize);
  const p = worldSize;
  const R = [...Array(p).keys()];
  const tri = (n: number) => (n * (n + 1)) / 2;
  res.forEach((o, r) => {
    expect(o.rank).toBe(r);
    expect(o.sumF32).toEqual([tri(p), -tri(p), 0.5 * tri(p - 1)]);
    expect((o.maxF32 as number[]).map((x) => x + 0)).toEqual([p - 1, 0]); // -0 -> 0
    expect((o.minF32 as number[]).map((x) => x + 0)).toEqual([0, -(p - 1) + 0]); // JSON turns -0 into 0
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
    expect(o.afterFree).toBe("COMM_CLOSED");
    expect(o.optOut).toBe(r === 0 ? "null" : `size ${p - 1}`);
    expect(o.concurrent).toEqual([0, 1, 2, 3].map((k) => k * tri(p)));
    // allReduce, reduceScatter, allGather, allToAll, allToAllV, broadcast, barrier, split
    expect(o.calls).toEqual([9, 1, 1, 1, 1, 1, 1, 2]); // subSum ran on the sub-communicator
    expect(o.allReduceBytes).toBe(4 * 3 + 4 * 2 + 4 * 2 + 4 * 2 + 8 + 4 * 4);
  });
}

/** Expected errors of ranks/mismatch.ts `mismatches` at world size 3. */
export function checkMismatches(res: Mismatch[]): void {
  const msg = (r: number, k: string) => res[r]![k]! as { code: string; message: string };
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
}

/** Literal expected values of ranks/collectives.ts `blockingCollectives` at world size p >= 2. */
export function checkBlocking(res: Record<string, unknown>[], worldSize: number): void {
  const p = worldSize;
  const R = [...Array(p).keys()];
  const tri = (n: number) => (n * (n + 1)) / 2;
  res.forEach((o, r) => {
    expect(o.sumF32).toEqual([tri(p), -tri(p), 0.5 * tri(p - 1)]);
    expect(o.maxF32).toEqual([p - 1, 0]);
    expect(o.sumI32).toEqual([tri(p - 1), 100 * p]);
    expect(o.allGather).toEqual(R.flatMap((q) => [q, q * q]));
    expect(o.allToAll).toEqual(R.map((q) => 100 * q + r));
    expect(o.allToAllV).toEqual(R.flatMap((q) => Array(r + 1).fill(10 * q + r)));
    expect(o.subSum).toEqual([R.filter((q) => q % 2 === r % 2).reduce((a, b) => a + b, 0)]);
    expect(o.asyncThenSync).toEqual([p, 2 * p]);
    expect(o.whilePending).toMatch(
      /allReduceSync on 'world': 1 asynchronous collective\(s\) of this communicator are still pending; await them/,
    );
    expect(o.mismatch).toMatch(
      new RegExp(
        `^RANK_MISMATCH: allReduceSync #\\d+ on 'world' \\(${p} ranks\\): lengths differ across ranks \\(rank 0: 4, rank 1: 3`,
      ),
    );
    expect(o.after).toEqual([p]);
    // allReduce (sumF32, maxF32, sumI32, asyncThenSync x2, mismatch, after), allGather, allToAll, allToAllV
    expect(o.calls).toEqual([7, 1, 1, 1]);
  });
}
