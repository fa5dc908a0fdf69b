// Shared vitest preset for PolyMoE packages.
//
// - Workspace packages resolve to their TypeScript sources through the
//   `@polymoe/source` export condition, so tests never need a prior build.
// - The machine has few cores: at most two test files run at once, and each
//   native kernel call is limited to one thread unless the caller set
//   POLYMOE_NUM_THREADS / OMP_NUM_THREADS / OPENBLAS_NUM_THREADS itself.
import { defineConfig, mergeConfig } from "vitest/config";

const threadDefaults = {
  POLYMOE_NUM_THREADS: process.env.POLYMOE_NUM_THREADS ?? "1",
  OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? "1",
  OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? "1",
};

/**
 * @param {import("vitest/config").UserConfig} [overrides]
 */
export function definePackageConfig(overrides = {}) {
  return mergeConfig(
    defineConfig({
      resolve: { conditions: ["@polymoe/source"] },
      ssr: { resolve: { conditions: ["@polymoe/source"] } },
      test: {
        include: ["test/**/*.test.ts"],
        environment: "node",
        pool: "forks",
        maxWorkers: 2,
        testTimeout: 60_000,
        hookTimeout: 60_000,
        env: threadDefaults,
        reporters: process.env.CI ? ["default"] : ["default"],
      },
    }),
    overrides,
  );
}
