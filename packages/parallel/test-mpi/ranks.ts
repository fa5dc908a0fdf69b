// Rank functions that bundle several checks into one MPI job (each mpirun start costs seconds).
import { type Communicator, commBuffer } from "../src/index.js";
import { collectives } from "../test/ranks/collectives.js";
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
    hugeBufferSum: await hugeBufferSum(world),
    collectives: await collectives(world),
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

/** allReduce over commBuffer() memory (huge-page aligned, owned by the binding). */
async function hugeBufferSum(world: Communicator): Promise<number[]> {
  const buf = commBuffer(1 << 20);
  buf.fill(world.rank + 1);
  await world.allReduce(buf);
  const r = [buf[0]!, buf[buf.length - 1]!];
  world.resetStats();
  return r;
}

/**
 * Rank 0 enters an allReduce that the last rank joins only 300 ms later; while
 * rank 0 waits, its event loop must keep running (the MPI call blocks a libuv
 * pool thread, not the main thread). Returns the 10 ms timer ticks seen.
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
