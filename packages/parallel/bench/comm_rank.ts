// The binding side of `pnpm bench:comm` (one rank, under mpirun): the same
// collectives, sizes and timing rule as bench/comm.c, through @polymoe/parallel
// as a user calls it (argument checks on), by both of its APIs: the Promise API
// (the MPI call runs on the communicator's own thread; what gradient reduction uses) and
// the blocking one (on the JS thread, as the C program calls MPI; what the MoE
// exchange and tensor-parallel reductions use).
// usage: comm_rank.ts BYTES ITERS; rank 0 prints one JSON line of median
// seconds, as the caller sees them (allreduce_s, alltoall_s; blocking:
// allreduce_sync_s, alltoall_sync_s) and, for the Promise API, inside MPI
// (…_mpi_s).
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

type Kind = "allreduce" | "alltoall";
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const token = new Float64Array(1);

/** One timed call: the slowest rank's time as the caller saw it, and inside MPI. */
async function once(kind: Kind, sync: boolean): Promise<[number, number]> {
  let dt: number;
  if (sync) {
    world.allReduceSync(token, { out: token }); // a blocking barrier: ranks leave it together
    const t0 = mpiWtime();
    if (kind === "allreduce") world.allReduceSync(send, { out: recv });
    else world.allToAllSync(send, { out: recv });
    dt = mpiWtime() - t0;
  } else {
    await world.barrier();
    const t0 = mpiWtime();
    if (kind === "allreduce") await world.allReduce(send, { out: recv });
    else await world.allToAll(send, { out: recv });
    dt = mpiWtime() - t0;
  }
  const worst = await world.allReduce(Float64Array.of(dt, mpiLastCollectiveSeconds()), { op: "max" });
  return [worst[0]!, worst[1]!];
}

// Series in the C program's order (allReduce, then allToAll), each API's after
// the other's, each with two warm-up calls: the same access pattern as C's.
const out: Record<string, number> = { bytes: n * 4 };
for (const kind of ["allreduce", "alltoall"] as const) {
  for (const sync of [false, true]) {
    const outer: number[] = [];
    const inner: number[] = [];
    for (let it = -2; it < iters; it++) {
      const [o, i] = await once(kind, sync);
      if (it >= 0) {
        outer.push(o);
        inner.push(i);
      }
    }
    const key = sync ? `${kind}_sync` : kind;
    out[`${key}_s`] = median(outer);
    out[`${key}_mpi_s`] = median(inner);
  }
}
if (world.rank === 0) console.log(JSON.stringify(out));
