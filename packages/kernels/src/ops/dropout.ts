import { type Tensor, dropout as tfDropout } from "@tensorflow/tfjs-core";

import { KernelError } from "../errors.js";
import { Dropout } from "../kernel_names.js";
import { assertFloat32, backendHasKernel, runKernel } from "./util.js";

/**
 * Inverted dropout: each element is zeroed with probability `rate`, the rest
 * scaled by 1 / (1 - rate). seed: an integer in [0, 2^32) (e.g. Rng.seed());
 * the same seed gives the same mask. On polymoe-native one fused pass whose
 * mask depends only on (seed, element index) — nothing is stored for the
 * backward pass, and the result does not depend on the thread count;
 * elsewhere tfjs's dropout (a different mask for the same seed).
 */
export function dropout<T extends Tensor>(x: T, rate: number, seed: number): T {
  assertFloat32(x, "x", "dropout");
  if (!(rate >= 0 && rate < 1)) {
    throw new KernelError("INVALID_ARGUMENT", `dropout: rate must be in [0, 1), got ${rate}`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new KernelError("INVALID_ARGUMENT", `dropout: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  if (rate === 0) return x;
  if (backendHasKernel(Dropout)) return runKernel<T>(Dropout, { x }, { rate, seed });
  return tfDropout(x, rate, undefined, seed) as T;
}
