// The binding side of `pnpm bench:comm` (one rank, under mpirun): the same
// collectives, sizes and timing rule as bench/comm.c, through @polymoe/parallel
// as a user calls it (Promise API, argument checks on).
// usage: comm_rank.ts BYTES ITERS; rank 0 prints one JSON line of median seconds.
import { commBuffer, mpiWorld, mpiWtime } from "../src/index.js";

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

async function timed(kind: "allreduce" | "alltoall"): Promise<number> {
  const all: number[] = [];
  for (let it = -2; it < iters; it++) {
    await world.barrier();
    const t0 = mpiWtime();
    if (kind === "allreduce") await world.allReduce(send, { out: recv });
    else await world.allToAll(send, { out: recv });
    const dt = mpiWtime() - t0;
    const worst = await world.allReduce(Float64Array.of(dt), { op: "max" });
    if (it >= 0) all.push(worst[0]!);
  }
  all.sort((a, b) => a - b);
  return all[Math.floor(iters / 2)]!;
}

const allreduce = await timed("allreduce");
const alltoall = await timed("alltoall");
if (world.rank === 0)
  console.log(JSON.stringify({ bytes: n * 4, allreduce_s: allreduce, alltoall_s: alltoall }));
