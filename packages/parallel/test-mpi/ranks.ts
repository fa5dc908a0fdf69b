// Rank functions that bundle several checks into one MPI job (each mpirun start costs seconds).
import type { Communicator } from "../src/index.js";
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
