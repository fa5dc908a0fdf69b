import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Transformer } from "@polymoe/model";
import { expect, it } from "vitest";

import { TrainConfig, Trainer } from "../src/index.js";
import { env, onBackend, quiet, SyntheticSource, tinyTaskMoe, uniq } from "./helpers.js";

/** Serves the same batch forever. */
class OneBatch extends SyntheticSource {
  override next() {
    this.position = 0;
    return super.next();
  }
}

it(`a task-MoE model overfits one batch (no dropout or smoothing): nll -> ~0 (on ${env.backends.at(-1)})`, () =>
  onBackend(env.backends.at(-1) as string, async () => {
    const model = new Transformer(
      { ...tinyTaskMoe, dModel: 32, heads: 4, dFF: 64, dropout: 0 },
      { seed: 1, namespace: uniq("overfit") },
    );
    const config = TrainConfig.parse({
      maxSteps: 120,
      labelSmoothing: 0,
      optimizer: { lr: 3e-3, schedule: { type: "constant", warmupSteps: 10 } },
    });
    const t = new Trainer({
      model,
      config,
      data: new OneBatch(),
      runDir: mkdtempSync(path.join(tmpdir(), "overfit-")),
      runConfig: {},
      progress: quiet,
      handleSignals: false,
    });
    let first = 0;
    let last = 0;
    for (let i = 0; i < 120; i++) {
      const r = await t.trainStep();
      if (i === 0) first = r.nll;
      last = r.nll;
    }
    expect(first).toBeGreaterThan(2.5);
    expect(last).toBeLessThan(0.05);
    t.dispose();
    model.dispose();
  }));
