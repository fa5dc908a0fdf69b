import { definePackageConfig } from "@polymoe/vitest-config";

// `pnpm test:mpi`: suites that start real MPI jobs (mpirun --oversubscribe).
// One file at a time: each job already runs several processes on few cores.
export default definePackageConfig({
  test: {
    include: ["test-mpi/**/*.test.ts"],
    // The preset includes test/**; mergeConfig concatenates lists, so exclude it here.
    exclude: ["test/**", "**/node_modules/**"],
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 600_000,
  },
});
