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
import {
  checkAgainstReference,
  checkReshard,
  layouts,
  reshardResume,
  reshardSave,
  runDirWithCheckpoint,
} from "./ranks/parallel_checks.js";
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

  it("resharding: saved at EP=4 / ZeRO-2 on 4 ranks, resumed at EP=2 / ZeRO-1 on 2 ranks and in one process: the next steps equal the uninterrupted run's", async () => {
    const module = new URL("./ranks/parallel_train.ts", import.meta.url);
    const dirA = tmp("reshard-a");
    const saved = await runSimulated<RunSpec[], RunResult[]>({
      worldSize: 4,
      module,
      export: "trainRuns",
      args: [reshardSave(dirA)],
    });
    const ckpt = path.join(dirA, "checkpoints", "checkpoint_0_5");
    const dirB = runDirWithCheckpoint(ckpt, tmp("reshard-b"));
    const resumed = await runSimulated<RunSpec[], RunResult[]>({
      worldSize: 2,
      module,
      export: "trainRuns",
      args: [reshardResume(dirB)],
    });
    await checkReshard(
      saved.map((r) => r[0]!),
      resumed.map((r) => r[0]!),
      runDirWithCheckpoint(ckpt, tmp("reshard-c")),
    );
  });
});
