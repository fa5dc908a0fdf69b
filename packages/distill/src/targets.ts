// The teacher's side of word-level distillation: run the teacher on a batch (evaluation mode,
// no gradients) and turn its logits into targets for the KD loss, full or top-K.
// Axis legend: N = B*T padded target rows, R real target rows, V vocabulary, K kept entries.
import { logSoftmax } from "@polymoe/kernels";
import type { ModelBatch, Transformer } from "@polymoe/model";
import { Rng } from "@polymoe/routers";
import {
  dispose,
  div,
  exp,
  gather,
  keep,
  mul,
  sum,
  type Tensor1D,
  type Tensor2D,
  tensor1d,
  tidy,
  topk,
} from "@tensorflow/tfjs-core";

import { DistillError } from "./errors.js";
import type { FullTeacherTargets, TeacherTargets, TopKTeacherTargets } from "./kd_loss.js";
import { realRows } from "./kd_loss.js";

/** log softmax(z / T) of the real rows: <float32>[R, V] (the caller disposes it). */
function softenedLogProbs(logits: Tensor2D, mask: ArrayLike<number>, temperature: number): Tensor2D {
  const rows = realRows(mask);
  const N = logits.shape[0];
  return tidy(() => {
    const z = rows.length === N ? logits : (gather(logits, tensor1d(rows, "int32")) as Tensor2D);
    return logSoftmax(temperature === 1 ? z : (div(z, temperature) as Tensor2D));
  });
}

/**
 * Full targets from teacher logits <float32>[N, V]: probabilities softmax(z / T) of the
 * rows with mask = 1 and their negated entropies. The returned tensors are kept (outside any
 * tidy); release them with disposeTargets.
 */
export function fullTargets(
  logits: Tensor2D,
  mask: ArrayLike<number>,
  temperature: number,
): FullTeacherTargets {
  if (logits.shape[0] !== mask.length) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `teacher logits have ${logits.shape[0]} rows, the target mask ${mask.length} entries`,
    );
  }
  return tidy(() => {
    const lp = softenedLogProbs(logits, mask, temperature);
    const probs = exp(lp) as Tensor2D;
    const negEntropy = sum(mul(probs, lp), 1) as Tensor1D;
    return { kind: "full" as const, temperature, probs: keep(probs), negEntropy: keep(negEntropy) };
  });
}

/**
 * Top-K targets from teacher logits <float32>[N, V]: per real row, the K most probable
 * token ids (most probable first; ties to the lower id) and their log-probabilities at
 * temperature T, as host arrays.
 */
export function topKTargets(
  logits: Tensor2D,
  mask: ArrayLike<number>,
  temperature: number,
  k: number,
): TopKTeacherTargets {
  const V = logits.shape[1];
  if (!Number.isInteger(k) || k < 1 || k > V) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `topK must be an integer in [1, ${V}] (the vocabulary), got ${k}`,
    );
  }
  if (logits.shape[0] !== mask.length) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `teacher logits have ${logits.shape[0]} rows, the target mask ${mask.length} entries`,
    );
  }
  const { values, indices } = tidy(() => {
    const lp = softenedLogProbs(logits, mask, temperature);
    const t = topk(lp, k, true);
    return { values: t.values, indices: t.indices };
  });
  const out: TopKTeacherTargets = {
    kind: "topk",
    temperature,
    rows: values.shape[0] as number,
    k,
    indices: Int32Array.from(indices.dataSync() as Int32Array),
    logProbs: Float32Array.from(values.dataSync() as Float32Array),
  };
  dispose([values, indices]);
  return out;
}

/** Releases the tensors of full targets (top-K targets hold none). */
export function disposeTargets(t: TeacherTargets | undefined): void {
  if (t?.kind === "full") dispose([t.probs, t.negEntropy]);
}

/**
 * The teacher's logits for a batch: evaluation mode (no dropout, evaluation capacity), no
 * gradient tape, routing randomness from `seed` alone. <float32>[N, V]; the caller disposes.
 */
export function teacherLogits(teacher: Transformer, batch: ModelBatch, seed: number): Tensor2D {
  return tidy(() => teacher.forward(batch, { training: false, rng: new Rng(seed) }).logits);
}
