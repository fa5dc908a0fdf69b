// The binding side of `pnpm bench:comm` (one rank, under mpirun): the same
// collectives, sizes and timing rule as bench/comm.c, through @polymoe/parallel
// as a user calls it (Promise API, argument checks on).
// usage: comm_rank.ts BYTES ITERS; rank 0 prints one JSON line of median seconds,
// as the caller sees them (allreduce_s, alltoall_s) and inside MPI (…_mpi_s).
import { commBuffer, mpiLastCollectiveSeconds, mpiWorld, mpiWtime } from "../src/index.js";

// POLYMOE_BENCH_CHECKS=0 measures without the cross-rank argument checks.
const { comm: world } = mpiWorld({ checks: process.env.POLYMOE_BENCH_CHECKS !== "0" });
const p = world.size;
const bytes = Number(process.argv[2] ?? 16 * 2 ** 20);
const iters = Number(process.argv[3] ?? 10);
const n = Math.floor(bytes / 4 / p) * p;
// POLYMOE_BENCH_HUGE=1: buffers from commBuffer() (2 MiB-aligned, huge pages) instead of plain arrays.
const huge = process.env.POLYMOE_BENCH_HUGE === "1";
const send = huge ? commBuffer(n) : new Float32Array(n);
const recv = huge ? commBuffer(n) : new Float32Array(n);
for (let i = 0; i < n; i++) send[i] = world.rank + (i % 7);

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median over iterations of the slowest rank's time: as the caller sees it, and inside MPI. */
async function timed(kind: "allreduce" | "alltoall"): Promise<{ outer: number; inner: number }> {
  const outer: number[] = [];
  const inner: number[] = [];
  for (let it = -2; it < iters; it++) {
    await world.barrier();
    const t0 = mpiWtime();
    if (kind === "allreduce") await world.allReduce(send, { out: recv });
    else await world.allToAll(send, { out: recv });
    const dt = mpiWtime() - t0;
    const worst = await world.allReduce(Float64Array.of(dt, mpiLastCollectiveSeconds()), { op: "max" });
    if (it >= 0) {
      outer.push(worst[0]!);
      inner.push(worst[1]!);
    }
  }
  return { outer: median(outer), inner: median(inner) };
}

const allreduce = await timed("allreduce");
const alltoall = await timed("alltoall");
if (world.rank === 0)
  console.log(
    JSON.stringify({
      bytes: n * 4,
      allreduce_s: allreduce.outer,
      alltoall_s: alltoall.outer,
      allreduce_mpi_s: allreduce.inner,
      alltoall_mpi_s: alltoall.inner,
    }),
  );
