// Training across real MPI ranks (mpirun --oversubscribe, our Open MPI binding)
// equals training in one process: the same rank functions and checks as the
// simulated-rank suite (test/parallel.test.ts) — a tiny real Transformer with
// token- and task-routed MoE layers, 10 steps, the same global batch and seed.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

import { env } from "../test/helpers.js";
import {
  checkAgainstReference,
  checkReshard,
  layouts,
  reshardResume,
  reshardSave,
  runDirWithCheckpoint,
} from "../test/ranks/parallel_checks.js";
import type { RunResult, RunSpec } from "../test/ranks/parallel_train.js";
import { mpiReady, runRanks } from "./mpirun.js";

const tmp = (name: string) => mkdtempSync(path.join(tmpdir(), `polymoe-mpi-par-${name}-`));
const ready = mpiReady();
const module = "test/ranks/parallel_train.ts";

describe.skipIf(!ready.ok)(
  `training under mpirun = one process (tiny Transformer, 10 steps, on ${env.backends.at(-1)})${ready.note}`,
  () => {
    it.each([2, 4])("mpirun -np %i: DP, EP, EP+DP, ZeRO-1, ZeRO-2, tensor-sliced experts", async (np) => {
      const specs: RunSpec[] = layouts(np).map((l) => ({ ...l, steps: 10, runDir: tmp(l.name) }));
      const job = runRanks<RunResult[]>(np, module, "trainRuns", specs);
      expect(job.status, job.stderr).toBe(0);
      expect(job.results).toHaveLength(np);
      await checkAgainstReference(specs, job.results, np, tmp);
    });

    it("resharding: saved at EP=4 / ZeRO-2 on 4 ranks, resumed at EP=2 / ZeRO-1 on 2 ranks and in one process", async () => {
      const dirA = tmp("reshard-a");
      const saved = runRanks<RunResult[]>(4, module, "trainRuns", [reshardSave(dirA)]);
      expect(saved.status, saved.stderr).toBe(0);
      const ckpt = path.join(dirA, "checkpoints", "checkpoint_0_5");
      const resumed = runRanks<RunResult[]>(2, module, "trainRuns", [
        reshardResume(runDirWithCheckpoint(ckpt, tmp("reshard-b"))),
      ]);
      expect(resumed.status, resumed.stderr).toBe(0);
      await checkReshard(
        saved.results.map((r) => r[0]!),
        resumed.results.map((r) => r[0]!),
        runDirWithCheckpoint(ckpt, tmp("reshard-c")),
      );
    });
  },
);
