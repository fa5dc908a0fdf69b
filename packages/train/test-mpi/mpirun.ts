// Starts training test jobs under mpirun --oversubscribe (one rank per process,
// one thread each); results come back per rank.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { mpiAvailability } from "@polymoe/parallel";

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const asRoot = process.getuid?.() === 0 ? ["--allow-run-as-root"] : [];
const threads = { POLYMOE_NUM_THREADS: "1", OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" };

export interface Job<T> {
  status: number | null;
  stderr: string;
  ms: number;
  /** results[rank] */
  results: T[];
}

/** Whether MPI jobs can run here (the binding is built and mpirun starts), and if not, why. */
export function mpiReady(): { ok: true; note: "" } | { ok: false; note: string } {
  const a = mpiAvailability();
  if (!a.available) return { ok: false, note: ` [skipped: ${a.reason}]` };
  const v = spawnSync("mpirun", ["--version"], { encoding: "utf8" });
  if (v.status !== 0) {
    return { ok: false, note: " [skipped: mpirun not found (apt-get install -y openmpi-bin)]" };
  }
  return { ok: true, note: "" };
}

/** Runs `module`'s `exportName(world, args)` on np MPI ranks (test-mpi/run_rank.ts). */
export function runRanks<T>(
  np: number,
  module: string,
  exportName: string,
  args: unknown,
  timeoutMs = 240_000,
): Job<T> {
  const dir = mkdtempSync(path.join(tmpdir(), "polymoe-train-mpi-"));
  const started = Date.now();
  const r = spawnSync(
    "mpirun",
    [
      "--oversubscribe",
      "--bind-to",
      "none",
      ...asRoot,
      "-np",
      String(np),
      process.execPath,
      "--conditions=@polymoe/source",
      "--import",
      "tsx",
      path.join(pkgDir, "test-mpi/run_rank.ts"),
      path.join(pkgDir, module),
      exportName,
      JSON.stringify(args),
    ],
    { encoding: "utf8", env: { ...process.env, ...threads, POLYMOE_TEST_OUT: dir }, timeout: timeoutMs },
  );
  const results: T[] = [];
  for (const f of readdirSync(dir)) {
    const m = /^rank-(\d+)\.json$/.exec(f);
    if (m)
      results[Number(m[1])] = (JSON.parse(readFileSync(path.join(dir, f), "utf8")) as { value: T }).value;
  }
  rmSync(dir, { recursive: true, force: true });
  return { status: r.status, stderr: r.stderr, ms: Date.now() - started, results };
}
