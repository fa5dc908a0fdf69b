// Rank functions that bundle several checks into one MPI job (each mpirun start costs seconds).
import { createRequire } from "node:module";

import { type Communicator, commBuffer, mpiAddonPath, mpiLastCollectiveSeconds } from "../src/index.js";
import { blockingCollectives, collectives } from "../test/ranks/collectives.js";
import { exchange } from "../test/ranks/moe.js";
import type { ExchangeArgs } from "../test/ranks/moe_reference.js";
import type { ToyArgs } from "../test/ranks/toy_moe.js";
import { trainStep } from "../test/ranks/train.js";
import { type ZeroArgs, zeroTrain } from "../test/ranks/zero.js";

export async function suite(
  world: Communicator,
  args: { exchange: ExchangeArgs; train: ToyArgs[]; zero: ZeroArgs[] },
) {
  return {
    eventLoopTicks: await eventLoopDuringCollective(world),
    pendingAlive: await pendingKeepsProcessAlive(world),
    hugeBufferSum: await hugeBufferSum(world),
    nativeGuards: nativeGuards(),
    collectives: await collectives(world),
    blocking: world.size > 1 ? await blockingCollectives(world) : null,
    exchange: await exchange(world, args.exchange),
    train: await Promise.all(args.train.map((a) => trainStep(world, a))),
    zero: await Promise.all(args.zero.map((a) => zeroTrain(world, a))),
  };
}

/** Rank 1 throws while the others wait in a collective: the job must abort, not hang. */
export async function throwOnRank1(world: Communicator) {
  await world.barrier();
  if (world.rank === 1) throw new Error("rank 1 fails on purpose");
  await world.allReduce(Float32Array.of(1));
  return "unreachable";
}

/**
 * allReduce over commBuffer() memory (huge-page aligned, owned by the binding),
 * then over a large plain array at an unaligned offset (≥ 4 MiB: the binding
 * advises, then collapses, the 2 MiB pages it spans — ends included, which hold
 * other arrays' memory too), asynchronously and blocking. Returns [first, last]
 * of the commBuffer sum, the number of wrong elements of the plain sums (inside
 * the view, around it, and in the arrays allocated just before and after), and whether
 * mpiLastCollectiveSeconds() reported a time (a world of one copies without
 * calling MPI, so there it stays 0).
 */
async function hugeBufferSum(world: Communicator): Promise<number[]> {
  const buf = commBuffer(1 << 20);
  buf.fill(world.rank + 1);
  await world.allReduce(buf);
  const r = [buf[0]!, buf[buf.length - 1]!];
  const before = new Float32Array(1 << 19).fill(2.5);
  const whole = new Float32Array((3 << 20) + 11);
  const after = new Float32Array(1 << 19).fill(-1.5);
  whole.fill(-7);
  const view = whole.subarray(3, whole.length - 5);
  for (let i = 0; i < view.length; i++) view[i] = (i % 13) + world.rank;
  await world.allReduce(view);
  const p = world.size;
  const rankSum = (p * (p - 1)) / 2;
  let wrong = 0;
  for (let i = 0; i < view.length; i++) if (view[i] !== (i % 13) * p + rankSum) wrong++;
  for (let i = 0; i < view.length; i++) view[i] = i % 5;
  world.allReduceSync(view);
  for (let i = 0; i < view.length; i++) if (view[i] !== (i % 5) * p) wrong++;
  for (const i of [0, 1, 2, whole.length - 5, whole.length - 1]) if (whole[i] !== -7) wrong++;
  for (const x of before) if (x !== 2.5) wrong++;
  for (const x of after) if (x !== -1.5) wrong++;
  const timed = mpiLastCollectiveSeconds() > 0 ? 1 : 0;
  world.resetStats();
  return [...r, wrong, timed];
}

/**
 * Rank 0 enters an allReduce that the last rank joins only 300 ms later; while
 * rank 0 waits, its event loop must keep running (the MPI call blocks the
 * communicator's thread, not the main thread). Returns the 10 ms timer ticks seen.
 */
async function eventLoopDuringCollective(world: Communicator): Promise<number> {
  if (world.size === 1) return -1;
  await world.barrier();
  if (world.rank === world.size - 1) await new Promise((r) => setTimeout(r, 300));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  await world.allReduce(Float32Array.of(1));
  clearInterval(timer);
  world.resetStats(); // the collectives() check counts from zero
  return ticks;
}

/**
 * The last rank joins an allReduce 400 ms late (busy: its own event loop
 * blocked) while the others wait with nothing else on their event loops — no
 * timer, no I/O: the pending collective itself must keep each process alive
 * until its result arrives from the communicator's thread. Returns the sum.
 */
async function pendingKeepsProcessAlive(world: Communicator): Promise<number> {
  if (world.size === 1) return 1;
  await world.barrier();
  if (world.rank === world.size - 1) {
    const t = Date.now();
    while (Date.now() - t < 400) {}
  }
  const [sum] = await world.allReduce(Float32Array.of(1));
  world.resetStats(); // the collectives() check counts from zero
  return sum!;
}

/**
 * The binding's own argument checks, called directly (bypassing the
 * Communicator's): each bad call must throw a JS error before reaching MPI.
 * Local to each rank, so nothing here is a collective.
 */
function nativeGuards(): string[] {
  const addon = createRequire(import.meta.url)(mpiAddonPath()) as Record<
    string,
    (...a: unknown[]) => unknown
  >;
  const calls: (() => unknown)[] = [
    () => addon.allReduce!(0, new Float32Array(4), new Float32Array(3), "sum"),
    () => addon.allReduce!(0, new Uint8Array(4), new Uint8Array(4), "sum"),
    () => addon.allReduce!(0, new Float32Array(4), new Int32Array(4), "sum"),
    () => addon.allReduce!(0, new Float32Array(4), new Float32Array(4), "prod"),
    () => addon.allReduce!(99, new Float32Array(4), new Float32Array(4), "sum"),
    () => {
      const b = new Float32Array(8);
      return addon.allGather!(0, b.subarray(0, 4), b.subarray(2, 6));
    },
    () =>
      addon.allToAllV!(
        0,
        new Float32Array(2),
        Int32Array.of(5),
        Int32Array.of(0),
        new Float32Array(2),
        Int32Array.of(2),
        Int32Array.of(0),
      ),
    () => addon.broadcast!(0, new Float32Array(2), 1000),
    () => addon.allToAllSync!(0, new Float32Array(3), new Float32Array(2)),
    () => addon.allReduceSync!(0, new Float32Array(2), new Float64Array(2), "sum"),
    () => addon.free!(0),
  ];
  return calls.map((f) => {
    try {
      f();
      return "no error";
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
  });
}
