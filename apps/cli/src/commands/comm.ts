import { parseArgs } from "node:util";

import { createWorld, isLaunchedRank, mpiWtime } from "@polymoe/parallel";

import type { Command } from "../registry.js";

const HELP = `usage: polymoe comm [--mb N] [--iters N] [--collective allreduce|alltoall|both] [--kill-rank R --kill-at I]

Checks and times collectives over the world: every rank contributes known
values, the results are verified, and rank 0 prints the time and bandwidth of
each collective. Run it under the launcher: polymoe launch -n 2 -- comm

  --mb N           buffer size in MiB (float32), default 16
  --iters N        timed iterations per collective (after one warm-up), default 5
  --collective C   allreduce, alltoall or both (default both)
  --kill-rank R    failure rehearsal: rank R kills itself (SIGKILL) in the middle
  --kill-at I      of iteration I's collective (default 1), to check that the job stops`;

function fail(msg: string): number {
  console.error(`polymoe comm: ${msg}`);
  return 2;
}

function intFlag(v: string | undefined, name: string, min: number): number | string {
  const n = Number(v);
  return Number.isInteger(n) && n >= min ? n : `--${name} must be an integer >= ${min}, got '${v}'`;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      mb: { type: "string", default: "16" },
      iters: { type: "string", default: "5" },
      collective: { type: "string", default: "both" },
      "kill-rank": { type: "string" },
      "kill-at": { type: "string", default: "1" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
}

export const command: Command = {
  summary: "check and time allReduce/allToAll over the launched ranks",
  async run(argv) {
    let values: ReturnType<typeof parse>["values"];
    try {
      values = parse(argv).values;
    } catch (e) {
      return fail((e as Error).message);
    }
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const mb = Number(values.mb);
    if (!(mb > 0)) return fail(`--mb must be > 0, got '${values.mb}'`);
    const iters = intFlag(values.iters, "iters", 1);
    if (typeof iters === "string") return fail(iters);
    const killAt = intFlag(values["kill-at"], "kill-at", 1);
    if (typeof killAt === "string") return fail(killAt);
    const killRank = values["kill-rank"] === undefined ? -1 : intFlag(values["kill-rank"], "kill-rank", 0);
    if (typeof killRank === "string") return fail(killRank);
    const kinds = values.collective === "both" ? ["allreduce", "alltoall"] : [values.collective];
    if (!kinds.every((k) => k === "allreduce" || k === "alltoall")) {
      return fail(`--collective must be allreduce, alltoall or both, got '${values.collective}'`);
    }

    const world = createWorld({ backend: isLaunchedRank() ? "mpi" : "local", checks: true });
    const p = world.size;
    const n = Math.max(p, Math.floor((mb * 1024 * 1024) / 4 / p) * p);
    const bytes = n * 4;
    const now = () => (world.backend === "mpi" ? mpiWtime() : performance.now() / 1000);
    console.log(
      `comm: ${p} rank${p > 1 ? "s" : ""} (${world.backend}), ${(bytes / 2 ** 20).toFixed(1)} MiB float32, ${iters} iterations`,
    );
    let ok = true;
    for (const kind of kinds) {
      const send = new Float32Array(n);
      const recv = new Float32Array(n);
      const block = n / p;
      // allreduce: element i of rank r is r + 1 + i % 7; alltoall: block j of rank r holds 1000 r + j.
      if (kind === "allreduce") for (let i = 0; i < n; i++) send[i] = world.rank + 1 + (i % 7);
      else for (let j = 0; j < p; j++) send.fill(1000 * world.rank + j, j * block, (j + 1) * block);
      const times: number[] = [];
      for (let it = 0; it <= iters; it++) {
        await world.barrier();
        const t0 = now();
        const pending =
          kind === "allreduce" ? world.allReduce(send, { out: recv }) : world.allToAll(send, { out: recv });
        if (world.rank === killRank && it === killAt) {
          console.error(`rank ${world.rank}: --kill-rank rehearsal, killing myself during ${kind} ${it}`);
          process.kill(process.pid, "SIGKILL");
        }
        await pending;
        const dt = now() - t0;
        const worst = await world.allReduce(Float64Array.of(dt), { op: "max" });
        if (it > 0) times.push(worst[0]!);
      }
      let bad = 0;
      const tri = (p * (p + 1)) / 2;
      for (let i = 0; i < n; i++) {
        const want = kind === "allreduce" ? tri + p * (i % 7) : 1000 * Math.floor(i / block) + world.rank;
        if (recv[i] !== want) bad++;
      }
      const badAll = await world.allReduce(Int32Array.of(bad));
      ok &&= badAll[0] === 0;
      times.sort((a, b) => a - b);
      const med = times[Math.floor(times.length / 2)]!;
      console.log(
        `${kind.padEnd(9)} median ${(med * 1e3).toFixed(2)} ms, best ${(times[0]! * 1e3).toFixed(2)} ms, ` +
          `${(bytes / med / 1e9).toFixed(2)} GB/s (buffer bytes / time), check ${badAll[0] === 0 ? "ok" : `FAILED at ${badAll[0]} elements`}`,
      );
    }
    return ok ? 0 : 1;
  },
};
