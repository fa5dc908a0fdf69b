// Training across simulated ranks (worker threads, @polymoe/parallel's
// simulated backend) equals training in one process: a tiny real Transformer
// with token- and task-routed MoE layers, 10 steps, the same global batch and
// seed. The same checks run under mpirun in test-mpi/.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { runSimulated } from "@polymoe/parallel";
import { describe, it } from "vitest";

import { env } from "./helpers.js";
import { checkAgainstReference, layouts } from "./ranks/parallel_checks.js";
import type { RunResult, RunSpec } from "./ranks/parallel_train.js";

const tmp = (name: string) => mkdtempSync(path.join(tmpdir(), `polymoe-par-${name}-`));

describe(`training across simulated ranks = one process (tiny Transformer, 10 steps, on ${env.backends.at(-1)})`, () => {
  it.each([2, 4])(
    "world size %i: DP, EP, EP+DP, ZeRO-1, ZeRO-2, tensor-sliced experts",
    async (worldSize) => {
      const specs: RunSpec[] = layouts(worldSize).map((l) => ({ ...l, steps: 10, runDir: tmp(l.name) }));
      const res = await runSimulated<RunSpec[], RunResult[]>({
        worldSize,
        module: new URL("./ranks/parallel_train.ts", import.meta.url),
        export: "trainRuns",
        args: specs,
        runTimeoutMs: 300_000,
      });
      await checkAgainstReference(specs, res, worldSize, tmp);
    },
  );
});
