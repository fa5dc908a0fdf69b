import { definePackageConfig } from "@polymoe/vitest-config";

// `pnpm test:mpi`: suites that start real MPI jobs (mpirun --oversubscribe).
// One file at a time: each job already runs several processes on few cores.
export default definePackageConfig({
  test: {
    include: ["test-mpi/**/*.test.ts"],
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 120_000,
  },
});
