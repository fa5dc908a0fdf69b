// `pnpm bench:comm`: allReduce and allToAll of 16 MiB float32 at 2 and 4 ranks
// through our binding vs the same collectives from a small C program over the
// same MPI (built here with mpicc into a temp dir). The binding runs twice: on
// plain Float32Arrays and on commBuffer() memory (huge-page aligned, like the C
// program's buffers); each run times both of its APIs, the Promise one (MPI
// called on the communicator's own thread) and the blocking one (on the JS
// thread, as C). A second C run allocates its buffers with plain malloc, the
// same memory a plain Float32Array gets. Runs alternate C / C (malloc) /
// binding / binding for several rounds (in reverse order every other round);
// each side's figure is the median of its per-run medians, and C / binding the
// median of the ratios within a round. The binding's own cost is also measured
// per call (time inside MPI vs time the caller saw), which the
// process-to-process swing of MPI's speed does not blur. Ends with one JSON
// line. Run under `flock /tmp/polymoe-bench.lock` on a shared machine.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { mpiAvailability, planLaunch } from "../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const BYTES = 16 * 2 ** 20;
const ITERS = Number(process.env.BENCH_ITERS ?? 30);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);

const avail = mpiAvailability();
if (!avail.available) {
  console.error(`bench:comm needs the MPI binding: ${avail.reason}`);
  process.exit(1);
}

const dir = mkdtempSync(path.join(tmpdir(), "polymoe-bench-comm-"));
const cBin = path.join(dir, "comm_c");
execFileSync("mpicc", ["-O2", "-o", cBin, path.join(here, "comm.c")], { stdio: "inherit" });

const tsx = ["--conditions=@polymoe/source", "--import", "tsx"];

interface Run {
  bytes: number;
  allreduce_s: number;
  alltoall_s: number;
  /** Binding runs only: the same calls' time inside MPI (mpiLastCollectiveSeconds). */
  allreduce_mpi_s?: number;
  alltoall_mpi_s?: number;
  /** Binding runs only: the blocking API (allReduceSync, allToAllSync). */
  allreduce_sync_s?: number;
  alltoall_sync_s?: number;
}

/** Both sides start exactly as `polymoe launch` would start them (same mpirun flags and binding). */
function mpirun<R = Run>(np: number, cmd: string[], extraEnv: Record<string, string> = {}): R {
  const plan = planLaunch({
    ranks: np,
    command: cmd,
    env: {
      ...process.env,
      POLYMOE_NUM_THREADS: "1",
      OMP_NUM_THREADS: "1",
      OPENBLAS_NUM_THREADS: "1",
      ...extraEnv,
    },
  });
  const r = spawnSync(plan.file, plan.args, {
    encoding: "utf8",
    env: plan.env,
    cwd: path.resolve(here, ".."),
  });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !line.startsWith("{")) {
    throw new Error(`mpirun ${plan.args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return JSON.parse(line) as R;
}

const gbps = (bytes: number, s: number) => Math.round((bytes / s / 1e9) * 1000) / 1000;
const figures: Record<string, number> = {};
const rows: string[] = [];
const syncRows: string[] = [];
const mallocRows: string[] = [];
const roundLines: string[] = [];
for (const np of [2, 4]) {
  const c: Run[] = [];
  const cMalloc: Run[] = [];
  const js: Run[] = [];
  const jsHuge: Run[] = [];
  const node = [process.execPath, ...tsx, path.join(here, "comm_rank.ts"), String(BYTES), String(ITERS)];
  for (let round = 0; round < ROUNDS; round++) {
    // C first in even rounds, last in odd ones: a drift of the host's speed within a round favours neither side.
    const runs = [
      () => c.push(mpirun(np, [cBin, String(BYTES), String(ITERS)])),
      () => cMalloc.push(mpirun(np, [cBin, String(BYTES), String(ITERS), "malloc"])),
      () => js.push(mpirun(np, node)),
      () => jsHuge.push(mpirun(np, node, { POLYMOE_BENCH_HUGE: "1" })),
    ];
    for (const run of round % 2 === 0 ? runs : runs.reverse()) run();
    process.stderr.write(`np=${np} round ${round + 1}/${ROUNDS} done\n`);
  }
  for (const kind of ["allreduce", "alltoall"] as const) {
    const key = `${kind}_s` as const;
    const mpiKey = `${kind}_mpi_s` as const;
    const syncKey = `${kind}_sync_s` as const;
    // Open MPI's own speed here differs from run to run by up to 2x (the C
    // program's too: the host moves), so each side's figure is the median over
    // its runs of the per-run medians (best run printed beside it), and the
    // ratios are taken within a round (C and binding runs seconds apart),
    // then their median.
    const mid = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const at = (r: Run, k: "s" | "sync") => (k === "s" ? r[key] : r[syncKey]!);
    const med = (runs: Run[], k: "s" | "sync" = "s") => mid(runs.map((r) => at(r, k)));
    const best = (runs: Run[], k: "s" | "sync" = "s") => Math.min(...runs.map((r) => at(r, k)));
    const ratios = (runs: Run[], k: "s" | "sync" = "s", base = c) =>
      runs.map((r, i) => base[i]![key] / at(r, k));
    const perRound = (runs: Run[], k: "s" | "sync" = "s", base = c) => mid(ratios(runs, k, base));
    // The binding's own cost, free of that swing: inside-MPI time / caller's time, same calls.
    const eff = (runs: Run[]) => mid(runs.map((r) => r[mpiKey]! / r[key]));
    const [cMed, jsMed, hugeMed] = [med(c), med(js), med(jsHuge)];
    const bytes = js[0]!.bytes;
    const ms = (s: number) => `${(s * 1e3).toFixed(2)} ms`;
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    figures[`${kind}_gbps_np${np}`] = gbps(bytes, jsMed);
    figures[`${kind}_c_gbps_np${np}`] = gbps(bytes, cMed);
    figures[`${kind}_commbuf_gbps_np${np}`] = gbps(bytes, hugeMed);
    figures[`${kind}_ratio_np${np}`] = r3(perRound(js));
    figures[`${kind}_commbuf_ratio_np${np}`] = r3(perRound(jsHuge));
    figures[`${kind}_best_ratio_np${np}`] = r3(best(c) / best(js));
    figures[`${kind}_binding_efficiency_np${np}`] = r3(eff(js));
    figures[`${kind}_commbuf_binding_efficiency_np${np}`] = r3(eff(jsHuge));
    figures[`${kind}_sync_gbps_np${np}`] = gbps(bytes, med(js, "sync"));
    figures[`${kind}_sync_commbuf_gbps_np${np}`] = gbps(bytes, med(jsHuge, "sync"));
    figures[`${kind}_sync_ratio_np${np}`] = r3(perRound(js, "sync"));
    figures[`${kind}_sync_commbuf_ratio_np${np}`] = r3(perRound(jsHuge, "sync"));
    // Plain arrays against C on the same kind of memory (malloc'd, as V8 allocates).
    figures[`${kind}_c_malloc_gbps_np${np}`] = gbps(bytes, med(cMalloc));
    figures[`${kind}_malloc_ratio_np${np}`] = r3(perRound(js, "s", cMalloc));
    figures[`${kind}_sync_malloc_ratio_np${np}`] = r3(perRound(js, "sync", cMalloc));
    mallocRows.push(
      `| ${kind} 16 MiB | ${np} | ${ms(med(cMalloc))} (${ms(best(cMalloc))}) | ${ms(jsMed)} | **${perRound(js, "s", cMalloc).toFixed(2)}** | ${ms(med(js, "sync"))} | **${perRound(js, "sync", cMalloc).toFixed(2)}** |`,
    );
    const perRoundLine = (runs: Run[], k: "s" | "sync") =>
      ratios(runs, k)
        .map((x) => x.toFixed(2))
        .join(" ");
    roundLines.push(
      `${kind} np=${np} per-round C / binding (commBuffer): Promise ${perRoundLine(jsHuge, "s")}; blocking ${perRoundLine(jsHuge, "sync")}; C ms: ${c.map((r) => (r[key] * 1e3).toFixed(2)).join(" ")}`,
    );
    rows.push(
      `| ${kind} 16 MiB | ${np} | ${ms(jsMed)} (${ms(best(js))}) | ${ms(hugeMed)} (${ms(best(jsHuge))}) | ${ms(cMed)} (${ms(best(c))}) | **${perRound(js).toFixed(2)}** | **${perRound(jsHuge).toFixed(2)}** | ${eff(js).toFixed(3)} | ${eff(jsHuge).toFixed(3)} |`,
    );
    syncRows.push(
      `| ${kind} 16 MiB | ${np} | ${ms(med(js, "sync"))} (${ms(best(js, "sync"))}) | ${ms(med(jsHuge, "sync"))} (${ms(best(jsHuge, "sync"))}) | ${ms(cMed)} (${ms(best(c))}) | **${perRound(js, "sync").toFixed(2)}** | **${perRound(jsHuge, "sync").toFixed(2)}** |`,
    );
  }
}
rmSync(dir, { recursive: true, force: true });

// The MoE layer at EP=2 (its 8 experts split 4 + 4 over two ranks, 4096 tokens
// per rank), split into the token exchange and the rest, against the same layer
// in one process holding all 8 experts (the exchange is then the identity).
interface MoeRun {
  ranks: number;
  tokens: number;
  step_s: number;
  comm_s: number;
}
const moeCmd = [process.execPath, ...tsx, path.join(here, "moe_ep_rank.ts"), "4096", "5"];
const moe1 = mpirun<MoeRun>(1, moeCmd);
const moe2 = mpirun<MoeRun>(2, moeCmd);
const msOf = (s: number) => Math.round(s * 1e4) / 10;
figures.moe_ep1_step_ms = msOf(moe1.step_s);
figures.moe_ep2_step_ms = msOf(moe2.step_s);
figures.moe_ep2_comm_ms = msOf(moe2.comm_s);
figures.moe_ep2_compute_ms = msOf(moe2.step_s - moe2.comm_s);
figures.moe_ep2_comm_share = Math.round((moe2.comm_s / moe2.step_s) * 1000) / 1000;

console.log(
  `bench:comm — median of ${ITERS} iterations per run; median (best) of ${ROUNDS} alternating runs per side`,
);
console.log(
  "Promise API (allReduce / allToAll: MPI called on the communicator's own thread, the event loop free):",
);
console.log(
  "| collective | ranks | binding (Float32Array) | binding (commBuffer) | C | C / binding | C / binding (commBuffer) | in MPI / caller's time | same, commBuffer |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
console.log();
console.log(
  "Blocking API (allReduceSync / allToAllSync: MPI called on the JS thread, as the C program calls it), same runs:",
);
console.log(
  "| collective | ranks | binding (Float32Array) | binding (commBuffer) | C | C / binding | C / binding (commBuffer) |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const r of syncRows) console.log(r);
console.log();
console.log(
  "Plain Float32Arrays against C on the same kind of memory (malloc'd: 4 KiB-aligned, no huge-page advice), same rounds:",
);
console.log(
  "| collective | ranks | C (malloc) | binding, Promise | C / binding | binding, blocking | C / binding |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const r of mallocRows) console.log(r);
console.log();
for (const l of roundLines) console.log(l);
console.log(
  "(C / binding: the C program's time over the binding's in the same round, median over rounds; in MPI / caller's time: the binding's own cost, per call)",
);
console.log();
console.log(
  "MoE layer forward + backward, 4096 tokens per rank, d_model 512, d_ff 2048, top-2 of 8, capacity 1.25 (max over ranks, median of 5):",
);
console.log(`  1 process, 8 experts:        ${figures.moe_ep1_step_ms} ms`);
console.log(
  `  EP=2, 4 experts per rank:    ${figures.moe_ep2_step_ms} ms = compute ${figures.moe_ep2_compute_ms} ms + token exchange ${figures.moe_ep2_comm_ms} ms (${(100 * figures.moe_ep2_comm_share!).toFixed(1)}%)`,
);
console.log(JSON.stringify(figures));
