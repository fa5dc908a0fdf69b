import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Transformer } from "@polymoe/model";
import { OffloadedAdamW } from "@polymoe/offload";
import { describe, expect, it } from "vitest";

import { TrainConfig, type TrainConfigInput, Trainer } from "../src/index.js";
import {
  env,
  onBackend,
  quiet,
  SyntheticSource,
  tenSteps,
  testTrainer,
  tinyTaskMoe,
  tmp,
  uniq,
} from "./helpers.js";

function run(cfg: TrainConfigInput, tag: string) {
  const model = new Transformer(tinyTaskMoe, { seed: 3, namespace: uniq(tag) });
  const runDir = tmp("polymoe-offload-run-");
  return { model, trainer: testTrainer(model, cfg, runDir), runDir };
}

describe.each(env.backends)("training with offloaded optimizer state on %s", (backend) => {
  it("10 steps with moments (and masters) paged through disk give the same parameters as without", () =>
    onBackend(backend, async () => {
      const plain = run(tenSteps, "plain");
      await plain.trainer.run();
      const paramBytes = plain.model.numParameters() * 4;
      // Store cache: ~16 KB, far less than the ~8-12 bytes per parameter of state, so it pages.
      const dir = tmp("polymoe-offload-store-");
      const off = run(
        {
          ...tenSteps,
          offload: {
            dir,
            hostMemoryGB: (2 * paramBytes + 16384) / 2 ** 30,
            reserveGB: 0,
            enforceBudget: false,
          },
        },
        "offload",
      );
      expect(off.trainer.optimizer).toBeInstanceOf(OffloadedAdamW);
      await off.trainer.run();
      const want = plain.model.variables();
      for (const [name, v] of off.model.variables()) {
        const a = v.dataSync();
        const b = want.get(name)!.dataSync();
        let d = 0;
        for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
        expect(d, name).toBeLessThanOrEqual(1e-6);
      }
      // Budget honesty in the metrics: RSS and disk traffic per step.
      const lines = readFileSync(path.join(off.runDir, "metrics.jsonl"), "utf8").trim().split("\n");
      const train = lines.map((l) => JSON.parse(l)).filter((r) => r.kind === "train");
      expect(train.length).toBe(2);
      for (const r of train) {
        expect(r.memory.peakRssGB).toBeGreaterThan(0);
        expect(r.memory.diskReadMBPerStep).toBeGreaterThan(0);
        expect(r.memory.diskWrittenMBPerStep).toBeGreaterThan(0);
        expect(r.memory.offloadHostGB).toBeLessThanOrEqual(16384 / 2 ** 30);
      }
      // Checkpoints hold the moments in AdamW's format: the plain run resumes the offloaded one's.
      expect(readdirSync(dir).some((f) => f.endsWith(".f32"))).toBe(true);
      const plainRecord = JSON.parse(
        readFileSync(path.join(plain.runDir, "metrics.jsonl"), "utf8").trim().split("\n")[0] as string,
      );
      expect(plainRecord.memory.diskReadMBPerStep).toBe(0);
      plain.trainer.dispose();
      off.trainer.dispose();
    }));
});

describe("offload config through the trainer", () => {
  it("a budget below what the model needs stops before training, naming the figure", () => {
    expect(() =>
      run({ ...tenSteps, offload: { dir: tmp("polymoe-offload-small-"), hostMemoryGB: 0.01 } }, "small"),
    ).toThrow(
      /offload.hostMemoryGB is 0.01 but this model needs at least 0.50\d GB of host memory: .* set offload.hostMemoryGB to 0.50\d or more/,
    );
    expect(() =>
      TrainConfig.parse({ maxSteps: 1, offload: { dir: "x", hostMemoryGB: 1, reserve: 1 } }),
    ).toThrow();
  });

  it("is refused in a parallel run (the ZeRO optimizer keeps its own state), naming the fix", () => {
    const model = new Transformer(tinyTaskMoe, { seed: 3, namespace: uniq("par") });
    const config = TrainConfig.parse({
      ...tenSteps,
      offload: { dir: tmp("polymoe-offload-par-"), hostMemoryGB: 4 },
    });
    expect(
      () =>
        new Trainer({
          model,
          config,
          data: new SyntheticSource(),
          runDir: tmp("polymoe-offload-par-run-"),
          runConfig: {},
          progress: quiet,
          handleSignals: false,
          parallel: {} as never,
        }),
    ).toThrow(
      /train.offload is not supported in parallel runs yet .* remove train.offload or run in one process/,
    );
    model.dispose();
  });
});
