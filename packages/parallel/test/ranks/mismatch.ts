// Bad input on some ranks: every rank must get a clear error, none may hang or crash.
import type { Communicator } from "../../src/index.js";
import { caught } from "./util.js";

export async function mismatches(world: Communicator) {
  const r = world.rank;
  const res: Record<string, { code: string; message: string } | null | number[]> = {};
  res.length = await caught(() => world.allReduce(new Float32Array(r === 1 ? 3 : 4)));
  res.dtype = await caught(() => world.allReduce(r === 1 ? new Int32Array(4) : new Float32Array(4)));
  res.op = await caught(() => world.allReduce(new Float32Array(2), { op: r === 0 ? "max" : "sum" }));
  res.kind = await caught(() =>
    r === 0 ? world.allGather(new Float32Array(2)) : world.allReduce(new Float32Array(2)),
  );
  res.root = await caught(() => world.broadcast(new Float32Array(2), { root: r === 0 ? 0 : 1 }));
  res.tooSmallOut = await caught(() =>
    world.allGather(new Float32Array(2), { out: new Float32Array(r === 1 ? 3 : 2 * world.size) }),
  );
  res.wrongType = await caught(() =>
    world.allReduce((r === 1 ? new Uint8Array(4) : new Float32Array(4)) as unknown as Float32Array),
  );
  res.plainArray = await caught(() =>
    world.allReduce((r === 1 ? [1, 2] : new Float32Array(2)) as unknown as Float32Array),
  );
  res.indivisible = await caught(() =>
    world.reduceScatter(new Float32Array(r === 0 ? world.size + 1 : world.size)),
  );
  res.recvCounts = await caught(() =>
    world.allToAllV(new Float32Array(world.size), {
      sendCounts: Array(world.size).fill(1),
      recvCounts: Array.from({ length: world.size }, (_, j) => (r === 0 && j === 1 ? 2 : 1)),
    }),
  );
  res.sendCountsSum = await caught(() =>
    world.allToAllV(new Float32Array(world.size + (r === 1 ? 1 : 0)), {
      sendCounts: Array(world.size).fill(1),
    }),
  );
  // After all that, the communicator still works and the order is intact.
  res.after = [...(await world.allReduce(Float32Array.of(1)))];
  return res;
}

/** Rank 1 skips a collective: the others time out with a message naming rank 1. */
export async function skip(world: Communicator) {
  if (world.rank === 1) return null;
  return caught(() => world.allReduce(Float32Array.of(1)));
}

/** Rank 2 throws: runSimulated rejects naming it. */
export async function crash(world: Communicator) {
  await world.barrier();
  if (world.rank === 2) throw new Error("boom in the rank function");
  await world.barrier();
}
