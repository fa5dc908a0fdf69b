// Real MPI jobs (Open MPI through our binding), 2 and 4 ranks oversubscribed on
// this machine's cores, against the same literal expectations and single-rank
// references as the simulated tests.
import { describe, expect, it } from "vitest";
import { parseRankFailure } from "../src/index.js";
import { checkBlocking, checkCollectives, checkMismatches } from "../test/ranks/expectations.js";
import type { exchange } from "../test/ranks/moe.js";
import { type ExchangeArgs, exchangeReference } from "../test/ranks/moe_reference.js";
import { type ToyArgs, toyReference } from "../test/ranks/toy_moe.js";
import type { trainStep } from "../test/ranks/train.js";
import { maxAbsDiff } from "../test/ranks/util.js";
import type { ZeroArgs, zeroTrain } from "../test/ranks/zero.js";
import { mpiReady, runRanks } from "./mpirun.js";

type Suite = {
  eventLoopTicks: number;
  pendingAlive: number;
  hugeBufferSum: number[];
  nativeGuards: string[];
  collectives: Record<string, unknown>;
  blocking: Record<string, unknown> | null;
  exchange: Awaited<ReturnType<typeof exchange>>;
  train: Awaited<ReturnType<typeof trainStep>>[];
  zero: Awaited<ReturnType<typeof zeroTrain>>[];
};

const exchangeArgs: ExchangeArgs = { experts: 8, capacity: 3, dModel: 5, seed: 11 };
const toy = { worldSize: 4, experts: 8, dModel: 6, tokens: 10, seed: 5 };

function suiteArgs(np: number) {
  return {
    exchange: exchangeArgs,
    train: np === 4 ? [4, 2].map((ep): ToyArgs => ({ ...toy, ep, bucketMb: 16 / 2 ** 20 })) : [],
    zero:
      np === 4
        ? [{ stage: 2, ep: 2, denseSizes: [5, 17, 3], expertSizes: [11, 4], steps: 3 } satisfies ZeroArgs]
        : [],
  };
}

function checkExchange(res: Suite["exchange"][]) {
  res.forEach((o, r) => {
    const ref = exchangeReference(exchangeArgs, res.length, r);
    expect(o.expertInputLRCM).toEqual(ref.expertInputLRCM);
    expect(o.combinedECM).toEqual(ref.combinedECM);
    expect(o.droplessExpertInput).toEqual(ref.droplessExpertInput);
    expect(o.droplessOut).toEqual(ref.droplessOut);
    expect(o.inverse).toBe(true);
    expect(Math.abs(o.dots[0]! - o.dots[1]!)).toBeLessThan(1e-9 * Math.max(1, Math.abs(o.dots[0]!)));
  });
  // N ranks = 1 rank on the same tokens.
  expect(res[0]!.combinedECM).toEqual(exchangeReference(exchangeArgs, 1, 0).combinedECM);
}

const ready = mpiReady();

describe.skipIf(!ready.ok)(`MPI binding${ready.note}`, () => {
  it("runs as a singleton without mpirun: a world of one with MPI_THREAD_MULTIPLE", () => {
    const job = runRanks<Suite>(null, "test-mpi/ranks.ts", "suite", suiteArgs(1));
    expect(job.status, job.stderr).toBe(0);
    const { info, value } = job.results[0]!;
    expect(info).toMatchObject({ rank: 0, size: 1, threadMultiple: true });
    expect(info.library).toMatch(/Open MPI|MPICH/);
    checkCollectives([value.collectives], 1);
    expect(value.hugeBufferSum).toEqual([1, 1, 0, 0]);
    // The binding's own checks (below the Communicator's): JS errors, never a crash.
    expect(value.nativeGuards).toEqual([
      "RangeError: allReduce: recv has 3 elements, send has 4; they must be equal",
      "TypeError: send must be a Float32Array, Float64Array or Int32Array, got Uint8Array",
      "TypeError: allReduce: send is a Float32Array but recv is a Int32Array; both must have the same element type",
      "RangeError: op must be 'sum', 'max' or 'min', got 'prod'",
      "RangeError: communicator handle 99 is unknown or was freed",
      "RangeError: allGather: send and recv share memory; pass separate arrays",
      "RangeError: allToAllV: send block for rank 0 ends at 5 but the send buffer has 2 elements",
      "RangeError: broadcast: root 1000 is not a rank of this communicator (size 1)",
      "RangeError: allToAll: send has 3 and recv 2 elements; both must be equal and divisible by size 1",
      "TypeError: allReduce: send is a Float32Array but recv is a Float64Array; both must have the same element type",
      "RangeError: the world communicator cannot be freed",
    ]);
    checkExchange([value.exchange]);
  });

  it.each([2, 4])("mpirun -np %i: every collective, the MoE exchange, E+D gradients and ZeRO-2", (np) => {
    const job = runRanks<Suite>(np, "test-mpi/ranks.ts", "suite", suiteArgs(np));
    expect(job.status, job.stderr).toBe(0);
    expect(job.results.length).toBe(np);
    job.results.forEach((r, i) => {
      expect(r.info).toMatchObject({ rank: i, size: np, threadMultiple: true });
    });
    checkCollectives(
      job.results.map((r) => r.value.collectives),
      np,
    );
    checkBlocking(
      job.results.map((r) => r.value.blocking!),
      np,
    );
    const tri = (np * (np + 1)) / 2;
    for (const r of job.results) expect(r.value.hugeBufferSum).toEqual([tri, tri, 0, 1]);
    // Rank 0 waited ~300 ms inside allReduce with its event loop running (10 ms timer).
    expect(job.results[0]!.value.eventLoopTicks).toBeGreaterThanOrEqual(8);
    // Ranks waiting 400 ms with nothing on their event loops but the pending collective stayed alive.
    for (const r of job.results) expect(r.value.pendingAlive).toBe(np);
    checkExchange(job.results.map((r) => r.value.exchange));
    if (np === 4) {
      const ref = toyReference({ ...toy, ep: 1 });
      for (const { value } of job.results) {
        // ep=4 then ep=2: expert gradients scaled by 1/dp, not 1/edp (4x too large under EP=4).
        value.train.forEach((o, k) => {
          expect(o.sizes).toEqual({ dp: 4, ep: [4, 2][k], edp: [1, 2][k] });
          expect(maxAbsDiff(o.dg, ref.dg)).toBeLessThan(1e-6);
          o.dW.forEach((w, l) => {
            expect(maxAbsDiff(w, ref.dW[o.firstExpert + l]!)).toBeLessThan(1e-6);
          });
        });
        const z = value.zero[0]!;
        expect(z.paddingZero).toBe(true);
        expect(z.calls).toEqual({ dpAllReduce: 0, dpReduceScatter: 3, dpAllGather: 3 });
      }
      // ZeRO-2: every rank ends with the same dense parameters, and ranks holding the same experts agree.
      const zs = job.results.map((r) => r.value.zero[0]!);
      for (const z of zs) {
        expect(z.dense).toEqual(zs[0]!.dense);
        expect(z.expert).toEqual(zs[z.epIndex]!.expert);
      }
    }
  });

  it("mpirun -np 3: mismatched sizes, types, ops, roots and too-small buffers are clear errors on every rank", () => {
    const job = runRanks<Record<string, never>>(3, "test/ranks/mismatch.ts", "mismatches");
    expect(job.status, job.stderr).toBe(0);
    checkMismatches(job.results.map((r) => r.value));
  });

  it("a rank that throws stops the job (its peers wait in a collective) instead of hanging", () => {
    const job = runRanks<string>(3, "test-mpi/ranks.ts", "throwOnRank1");
    expect(job.status).not.toBe(0);
    expect(job.status).not.toBeNull(); // not the 90 s spawn timeout
    expect(job.ms).toBeLessThan(60_000);
    expect(job.stderr).toMatch(/Error: rank 1 fails on purpose/);
    expect(parseRankFailure(job.stderr)).toEqual({ rank: 1, detail: "exited with code 1" });
  });
});
