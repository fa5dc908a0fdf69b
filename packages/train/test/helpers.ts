import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { setupTestBackends } from "@polymoe/kernels/testing";
import type { ModelConfigInput, Transformer } from "@polymoe/model";

export const env = setupTestBackends();
export { assertClose, assertNoLeak, onBackend, rand, take } from "@polymoe/kernels/testing";

import { TrainConfig, type TrainConfigInput, Trainer, type TrainerOptions } from "../src/index.js";
import { Progress } from "../src/progress.js";
import { SyntheticSource, VOCAB } from "../src/testing.js";

export { BOS, EOS, PAD, SyntheticSource, VOCAB } from "../src/testing.js";

/** A Progress that prints nothing (tests). */
export const quiet = new Progress({ write: () => true } as unknown as NodeJS.WriteStream, false);
/** A fresh temporary directory named with `prefix`. */
export const tmp = (prefix: string) => mkdtempSync(path.join(tmpdir(), prefix));

/**
 * A quiet Trainer of `model` with config `cfg` on synthetic data in `runDir`,
 * leaving the process's signal handlers alone; `extra` overrides any option.
 */
export function testTrainer(
  model: Transformer,
  cfg: TrainConfigInput,
  runDir: string,
  extra: Partial<TrainerOptions> = {},
): Trainer {
  const config = TrainConfig.parse(cfg);
  return new Trainer({
    model,
    config,
    data: new SyntheticSource(),
    runDir,
    runConfig: { model: model.config, train: config },
    progress: quiet,
    handleSignals: false,
    ...extra,
  });
}

/** The 10-step AdamW run the offload equivalence tests compare with and without offload. */
export const tenSteps = {
  maxSteps: 10,
  seed: 9,
  evalEvery: 0,
  saveEvery: 0,
  logEvery: 5,
  optimizer: { lr: 3e-3, weightDecay: 0.01, schedule: { type: "constant" as const, warmupSteps: 3 } },
};

let counter = 0;
export const uniq = (s: string) => `${s}.${counter++}`;

export const tinyDense: ModelConfigInput = {
  vocabSize: VOCAB,
  dModel: 16,
  heads: 2,
  dFF: 32,
  encoderLayers: 1,
  decoderLayers: 2,
  maxLength: 16,
  dropout: 0.1,
};

export const tinyTaskMoe: ModelConfigInput = {
  ...tinyDense,
  moe: {
    encoder: { numExperts: 4, router: { type: "topk", k: 2, capacityFactor: 1.5, overflow: "random" } },
    decoder: { numExperts: 4, router: { type: "task", k: 2, numTasks: 3 } },
  },
};
