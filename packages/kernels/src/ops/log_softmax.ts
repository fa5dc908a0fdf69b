import {
  add,
  equal,
  fill,
  LogSoftmax,
  type Tensor,
  type Tensor2D,
  tensor1d,
  logSoftmax as tfLogSoftmax,
  tidy,
  topk,
  where,
} from "@tensorflow/tfjs-core";

import { KernelError } from "../errors.js";
import { LogSoftmaxTopK } from "../kernel_names.js";
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

export interface LogSoftmaxTopKOptions {
  /** A column never chosen (e.g. eos before a minimum length); it still counts in the normaliser. */
  exclude?: number;
}

/**
 * The k best entries of each row of logSoftmax(logits): logits <float32>[R, V]
 * -> { values <float32>[R, k] (log-probabilities, best first; ties to the lower
 * column), indices <int32>[R, k] }. Decoding's next-token step: on
 * polymoe-native one pass per row that never writes the [R, V] log-probabilities;
 * elsewhere logSoftmax then tfjs's topk. Rows with fewer than k candidates
 * (k = V with a column excluded) end with -Infinity at index -1. Forward only.
 */
export function logSoftmaxTopK(
  logits: Tensor2D,
  k: number,
  opts: LogSoftmaxTopKOptions = {},
): { values: Tensor2D; indices: Tensor2D } {
  assertFloat32(logits, "logits", "logSoftmaxTopK");
  if (logits.rank !== 2) {
    throw new KernelError(
      "SHAPE_MISMATCH",
      `logSoftmaxTopK: logits must be [rows, V], got [${logits.shape}]`,
    );
  }
  const [R, V] = logits.shape;
  if (!Number.isInteger(k) || k < 1 || k > V) {
    throw new KernelError("INVALID_ARGUMENT", `logSoftmaxTopK: k must be an integer in [1, ${V}], got ${k}`);
  }
  const exclude = opts.exclude ?? -1;
  if (!Number.isInteger(exclude) || exclude < -1 || exclude >= V) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `logSoftmaxTopK: exclude must be -1 or a column in [0, ${V}), got ${exclude}`,
    );
  }
  if (backendHasKernel(LogSoftmaxTopK)) {
    const [values, indices] = runKernel<Tensor2D[]>(LogSoftmaxTopK, { logits }, { k, exclude });
    return { values: values as Tensor2D, indices: indices as Tensor2D };
  }
  return tidy(() => {
    let lp = logSoftmax(logits);
    if (exclude >= 0) {
      const bar = new Float32Array(V);
      bar[exclude] = Number.NEGATIVE_INFINITY;
      lp = add(lp, tensor1d(bar));
    }
    const top = topk(lp, k, true);
    if (exclude < 0 || k < V) return { values: top.values as Tensor2D, indices: top.indices as Tensor2D };
    // k = V with a column barred: its -Infinity slot is the missing candidate.
    const isBarred = equal(top.indices, exclude);
    return {
      values: top.values as Tensor2D,
      indices: where(isBarred, fill([R, k], -1, "int32"), top.indices) as Tensor2D,
    };
  });
}
