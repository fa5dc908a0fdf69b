import { LogSoftmax, type Tensor, logSoftmax as tfLogSoftmax } from "@tensorflow/tfjs-core";

import { KernelError } from "../errors.js";
import { assertFloat32, backendHasKernel, runKernel } from "./util.js";

/**
 * log(softmax(logits)) over the last axis, computed stably (x - max - log sum exp).
 * logits: <float32>[..., C] -> [..., C]. One fused pass per row on the
 * polymoe-native backend (tfjs's own op is a composite of five kernels).
 */
export function logSoftmax<T extends Tensor>(logits: T, axis = -1): T {
  assertFloat32(logits, "logits", "logSoftmax");
  if (logits.rank < 1) throw new KernelError("SHAPE_MISMATCH", "logSoftmax: logits must have rank >= 1");
  if (axis !== -1 && axis !== logits.rank - 1) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `logSoftmax: only the last axis is supported, got axis ${axis} for rank ${logits.rank}`,
    );
  }
  if (backendHasKernel(LogSoftmax)) return runKernel<T>(LogSoftmax, { logits }, { axis: -1 });
  return tfLogSoftmax(logits, -1) as T;
}
