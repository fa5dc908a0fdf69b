import { definePackageConfig } from "@polymoe/vitest-config";

// `pnpm test`: the in-process and simulated (worker_threads) backends only.
// The mpirun-based suites live in test-mpi/ and run with `pnpm test:mpi`.
export default definePackageConfig();
