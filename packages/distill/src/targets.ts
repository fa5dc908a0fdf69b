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
  mul,
  sum,
  type Tensor2D,
  tensor1d,
  tensor2d,
  tidy,
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
 * Full targets from teacher logits <float32>[N, V]: probabilities softmax(z / T) on the rows
 * with mask = 1 (zero rows on padding) and the sum of their negated entropies. The returned
 * tensor is kept (outside any tidy); release it with disposeTargets.
 */
export function fullTargets(
  logits: Tensor2D,
  mask: ArrayLike<number>,
  temperature: number,
): FullTeacherTargets {
  const [N] = logits.shape;
  if (N !== mask.length) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `teacher logits have ${N} rows, the target mask ${mask.length} entries`,
    );
  }
  const rows = realRows(mask).length;
  const { probs, rowMass, negEntropy } = tidy(() => {
    const lp = logSoftmax(temperature === 1 ? logits : (div(logits, temperature) as Tensor2D));
    const m = tensor2d(
      Float32Array.from(mask, (x) => (x ? 1 : 0)),
      [N, 1],
    );
    const p = mul(exp(lp), m) as Tensor2D;
    return { probs: p, rowMass: sum(p, 1), negEntropy: sum(mul(p, lp)) };
  });
  const h = negEntropy.dataSync()[0] as number;
  const mass = Float32Array.from(rowMass.dataSync() as Float32Array);
  dispose([negEntropy, rowMass]);
  return { kind: "full", temperature, rows, probs, mass, negEntropy: h };
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
  const lp = softenedLogProbs(logits, mask, temperature);
  const R = lp.shape[0];
  const values = lp.dataSync() as Float32Array;
  const out: TopKTeacherTargets = {
    kind: "topk",
    temperature,
    rows: R,
    k,
    indices: new Int32Array(R * k),
    logProbs: new Float32Array(R * k),
  };
  // Per row, an insertion-sorted list of the k largest (a scan; ties keep the lower id first).
  const topV = new Float64Array(k);
  const topI = new Int32Array(k);
  for (let r = 0; r < R; r++) {
    const base = r * V;
    let n = 0;
    for (let v = 0; v < V; v++) {
      const x = values[base + v] as number;
      if (n === k && !(x > (topV[k - 1] as number))) continue;
      let j = n < k ? n++ : k - 1;
      while (j > 0 && x > (topV[j - 1] as number)) {
        topV[j] = topV[j - 1] as number;
        topI[j] = topI[j - 1] as number;
        j--;
      }
      topV[j] = x;
      topI[j] = v;
    }
    out.indices.set(topI, r * k);
    for (let j = 0; j < k; j++) out.logProbs[r * k + j] = topV[j] as number;
  }
  lp.dispose();
  return out;
}

/** Releases the tensors of full targets (top-K targets hold none). */
export function disposeTargets(t: TeacherTargets | undefined): void {
  if (t?.kind === "full") t.probs.dispose();
}

/**
 * The teacher's logits for a batch: evaluation mode (no dropout, evaluation capacity), no
 * gradient tape, routing randomness from `seed` alone. <float32>[N, V]; the caller disposes.
 */
export function teacherLogits(teacher: Transformer, batch: ModelBatch, seed: number): Tensor2D {
  return tidy(() => teacher.forward(batch, { training: false, rng: new Rng(seed) }).logits);
}
