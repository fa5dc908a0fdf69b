import { setupTestBackends } from "@polymoe/kernels/testing";
import type { ModelConfigInput } from "@polymoe/model";

export const env = setupTestBackends();
export { assertClose, assertNoLeak, onBackend, rand, take } from "@polymoe/kernels/testing";

import { VOCAB } from "../src/testing.js";

export { BOS, EOS, PAD, SyntheticSource, VOCAB } from "../src/testing.js";

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
