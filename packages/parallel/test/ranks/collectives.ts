// Every collective with small literal inputs; the test compares against literal expectations.
import type { Communicator } from "../../src/index.js";

export async function collectives(world: Communicator) {
  const r = world.rank;
  const p = world.size;
  const out: Record<string, number[] | number | string> = {};
  out.rank = r;
  out.size = p;
  // allReduce sum/max/min, float32 in place and int32 into out
  const f = Float32Array.of(r + 1, -(r + 1), 0.5 * r);
  out.sumF32 = [...(await world.allReduce(f))];
  out.maxF32 = [...(await world.allReduce(Float32Array.of(r, -r), { op: "max" }))];
  out.minF32 = [...(await world.allReduce(Float32Array.of(r, -r), { op: "min" }))];
  const iin = Int32Array.of(r, 100);
  const iout = new Int32Array(2);
  await world.allReduce(iin, { out: iout });
  out.sumI32 = [...iout];
  out.inputUntouched = [...iin];
  out.sumF64 = [...(await world.allReduce(Float64Array.of(0.1 * (r + 1))))];
  // reduceScatter: send [p blocks of 2]; block j = [10*r + j, 1]
  const rs = new Float32Array(2 * p);
  for (let j = 0; j < p; j++) rs.set([10 * r + j, 1], 2 * j);
  out.reduceScatter = [...(await world.reduceScatter(rs))];
  // allGather
  out.allGather = [...(await world.allGather(Int32Array.of(r, r * r)))];
  // allToAll: block j = [100*r + j]
  out.allToAll = [...(await world.allToAll(Float32Array.from({ length: p }, (_, j) => 100 * r + j)))];
  // allToAllV: rank r sends (j + 1) copies of (10*r + j) to rank j
  const counts = Array.from({ length: p }, (_, j) => j + 1);
  const vsend = new Float32Array(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  counts.forEach((c, j) => {
    vsend.fill(10 * r + j, at, at + c);
    at += c;
  });
  const v = await world.allToAllV(vsend, { sendCounts: counts });
  out.allToAllV = [...v.data];
  out.allToAllVCounts = [...v.recvCounts];
  // broadcast from the last rank
  const b = Float32Array.of(r, r);
  await world.broadcast(b, { root: p - 1 });
  out.broadcast = [...b];
  await world.barrier();
  // split: even and odd ranks, reversed order by key
  const sub = await world.split({ color: r % 2, key: -r, name: "parity" });
  out.subRank = sub!.rank;
  out.subSize = sub!.size;
  out.subName = sub!.name;
  // free() right after issuing a collective: the collective still completes, later ones reject.
  const pendingSum = sub!.allReduce(Float32Array.of(r));
  sub!.free();
  out.subSum = [...(await pendingSum)];
  out.afterFree = await sub!.barrier().then(
    () => "no error",
    (e: { code: string }) => e.code,
  );
  const none = await world.split({ color: r === 0 ? null : 1 });
  out.optOut = none === null ? "null" : `size ${none.size}`;
  // Several collectives in flight at once on one communicator keep their order.
  const many = await Promise.all([0, 1, 2, 3].map((k) => world.allReduce(Float32Array.of(k * (r + 1)))));
  out.concurrent = many.map((a) => a[0]!);
  const s = world.stats();
  out.calls = [
    s.allReduce.calls,
    s.reduceScatter.calls,
    s.allGather.calls,
    s.allToAll.calls,
    s.allToAllV.calls,
    s.broadcast.calls,
    s.barrier.calls,
    s.split.calls,
  ];
  out.allReduceBytes = s.allReduce.bytes;
  return out;
}

/**
 * The blocking (*Sync) collectives: the same literal inputs as above must give
 * the same results as the asynchronous ones, on the world and on a
 * sub-communicator; a blocking call while an async one is pending, and
 * mismatched lengths, are errors on every rank.
 */
export async function blockingCollectives(world: Communicator) {
  const r = world.rank;
  const p = world.size;
  const out: Record<string, unknown> = {};
  world.resetStats();
  out.sumF32 = [...world.allReduceSync(Float32Array.of(r + 1, -(r + 1), 0.5 * r))];
  out.maxF32 = [...world.allReduceSync(Float32Array.of(r, -r), { op: "max" })].map((x) => x + 0);
  const iout = new Int32Array(2);
  world.allReduceSync(Int32Array.of(r, 100), { out: iout });
  out.sumI32 = [...iout];
  out.allGather = [...world.allGatherSync(Int32Array.of(r, r * r))];
  out.allToAll = [...world.allToAllSync(Float32Array.from({ length: p }, (_, j) => 100 * r + j))];
  const counts = Array.from({ length: p }, (_, j) => j + 1);
  const vsend = new Float32Array(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  counts.forEach((c, j) => {
    vsend.fill(10 * r + j, at, at + c);
    at += c;
  });
  const v = world.allToAllVSync(vsend, {
    sendCounts: counts,
    recvCounts: Array.from({ length: p }, () => r + 1),
  });
  out.allToAllV = [...v.data];
  const sub = await world.split({ color: r % 2, key: r, name: "parity-sync" });
  out.subSum = [...sub!.allReduceSync(Float32Array.of(r))];
  // Interleaving blocking and asynchronous collectives is fine once the async ones settled.
  out.asyncThenSync = [
    ...(await world.allReduce(Float32Array.of(1))),
    ...world.allReduceSync(Float32Array.of(2)),
  ];
  const pending = world.barrier();
  try {
    world.allReduceSync(Float32Array.of(1));
    out.whilePending = "no error";
  } catch (e) {
    out.whilePending = (e as Error).message;
  }
  await pending;
  try {
    world.allReduceSync(new Float32Array(r === 1 ? 3 : 4));
    out.mismatch = "no error";
  } catch (e) {
    out.mismatch = `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
  out.after = [...world.allReduceSync(Float32Array.of(1))];
  const s = world.stats();
  out.calls = [s.allReduce.calls, s.allGather.calls, s.allToAll.calls, s.allToAllV.calls];
  return out;
}
