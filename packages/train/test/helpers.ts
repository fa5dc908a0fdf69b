import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { setupTestBackends } from "@polymoe/kernels/testing";
import type { ModelConfigInput } from "@polymoe/model";

export const env = setupTestBackends();
export { assertClose, assertNoLeak, onBackend, rand, take } from "@polymoe/kernels/testing";

import { Progress } from "../src/progress.js";
import { VOCAB } from "../src/testing.js";

export { BOS, EOS, PAD, SyntheticSource, VOCAB } from "../src/testing.js";

/** A Progress that prints nothing (tests). */
export const quiet = new Progress({ write: () => true } as unknown as NodeJS.WriteStream, false);
/** A fresh temporary directory named with `prefix`. */
export const tmp = (prefix: string) => mkdtempSync(path.join(tmpdir(), prefix));

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
