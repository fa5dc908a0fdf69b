// Shared tsup preset for PolyMoE packages: ESM output with declarations,
// one entry per public module, dependencies left external.
import { defineConfig } from "tsup";

/**
 * @param {Partial<import("tsup").Options>} [overrides]
 */
export function definePackageBuild(overrides = {}) {
  return defineConfig({
    entry: ["src/index.ts"],
    format: ["esm"],
    target: "node20",
    platform: "node",
    dts: true,
    sourcemap: true,
    clean: true,
    // Entries share one copy of module state (registries, registration flags).
    splitting: true,
    treeshake: false,
    ...overrides,
  });
}
