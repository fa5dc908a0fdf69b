import { availableParallelism } from "node:os";

/**
 * The thread budget of the native kernels, from the first of
 * POLYMOE_NUM_THREADS, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS that holds a
 * positive integer; otherwise every core. Several MPI ranks on one host should
 * each set POLYMOE_NUM_THREADS = cores / ranks (the launcher does).
 */
export function resolveNumThreads(env: NodeJS.ProcessEnv = process.env): number {
  for (const key of ["POLYMOE_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"] as const) {
    const raw = env[key];
    if (raw === undefined || raw === "") continue;
    const n = Number(raw);
    if (Number.isInteger(n) && n > 0) return n;
  }
  return availableParallelism();
}
