// Starts MPI test jobs: `runRanks(np, ...)` under mpirun --oversubscribe, or
// `runRanks(null, ...)` as a plain process (an MPI singleton).
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { mpiAvailability } from "../src/index.js";

export const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot = path.resolve(pkgDir, "../..");
const tsx = ["--conditions=@polymoe/source", "--import", "tsx"];
const asRoot = process.getuid?.() === 0 ? ["--allow-run-as-root"] : [];
const threads = { POLYMOE_NUM_THREADS: "1", OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" };

export interface Job<T> {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  results: { value: T; info: { rank: number; size: number; threadMultiple: boolean; library: string } }[];
}

function collect<T>(r: SpawnSyncReturns<string>, started: number, dir?: string): Job<T> {
  const results: Job<T>["results"] = [];
  if (dir) {
    for (const f of readdirSync(dir)) {
      const m = /^rank-(\d+)\.json$/.exec(f);
      if (m) results[Number(m[1])] = JSON.parse(readFileSync(path.join(dir, f), "utf8"));
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started, results };
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

/** Runs test-mpi/run_rank.ts on np ranks (null: one plain process); results come back per rank. */
export function runRanks<T>(np: number | null, module: string, exportName: string, args?: unknown): Job<T> {
  const cmd = [...tsx, path.join(pkgDir, "test-mpi/run_rank.ts"), path.join(pkgDir, module), exportName];
  if (args !== undefined) cmd.push(JSON.stringify(args));
  const started = Date.now();
  const dir = mkdtempSync(path.join(tmpdir(), "polymoe-mpi-test-"));
  const env = { ...process.env, ...threads, POLYMOE_TEST_OUT: dir };
  const r =
    np === null
      ? spawnSync(process.execPath, cmd, { encoding: "utf8", env, timeout: 90_000 })
      : spawnSync(
          "mpirun",
          ["--oversubscribe", "--bind-to", "none", ...asRoot, "-np", String(np), process.execPath, ...cmd],
          { encoding: "utf8", env, timeout: 90_000 },
        );
  return collect<T>(r, started, dir);
}

/** `polymoe <args>` from the repository root, as a user runs it. */
export function polymoe(args: string[]): Job<never> {
  const started = Date.now();
  const r = spawnSync(process.execPath, [...tsx, path.join(repoRoot, "apps/cli/src/bin.ts"), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, ...threads, POLYMOE_NUM_THREADS: "" },
    timeout: 90_000,
  });
  return collect<never>(r, started);
}
