// Word-level knowledge distillation (Hinton et al. 2015; word-level KD of Kim & Rush 2016).
//
// Axis legend: N rows of the padded target ([B*T] flattened), R real target rows (mask = 1,
// in row order), V vocabulary, K cached teacher entries per row.
//
//   loss = alpha * T^2 * mean_r KL(p_r || q_r) + (1 - alpha) * mean_r CE_r
//
//   p_r  = softmax(z_teacher[r] / T)   (full, or its top-K approximation, see below)
//   q_r  = softmax(z_student[r] / T)
//   CE_r = (1 - eps) * -log s_r[y_r] + eps * mean_v -log s_r[v],  s_r = softmax(z_student[r])
//
// T^2 keeps the KL's gradient on the scale of the cross-entropy's as T changes (Hinton et al.).
// With alpha = 1 the gradient is that of T^2 * CE(p_r, q_r): the teacher's entropy is constant.
//
// Top-K teachers (the logit cache) keep, per row, the K most probable tokens and their
// log-probabilities at temperature T. The mass r = 1 - sum_K p left outside them is
//   "spread"      (default) uniformly over the V - K other tokens: the K kept entries are
//                 exact and the total mass is 1. Its L1 distance to the true p is at most 2r,
//                 which is exactly the distance of
//   "renormalize" p restricted to the K tokens and rescaled to sum to 1 (a sparser target).
// Both reduce to the exact loss when K = V. With spread, for row r (u = r / (V - K)):
//   KL_r = sum_K p (log p - log q_K) + r log u - u (sum_V log q - sum_K log q_K).
import { logSoftmax } from "@polymoe/kernels";
import {
  add,
  div,
  gather,
  mean,
  mul,
  neg,
  reshape,
  type Scalar,
  scalar,
  sub,
  sum,
  type Tensor1D,
  type Tensor2D,
  tensor1d,
  tensor2d,
  tidy,
} from "@tensorflow/tfjs-core";

import { DistillError } from "./errors.js";

/** The teacher's temperature-softened distribution over every vocabulary entry of each real target row. */
export interface FullTeacherTargets {
  kind: "full";
  temperature: number;
  /** <float32>[R, V] softmax(z_teacher / T) on the real target rows, in row order. */
  probs: Tensor2D;
  /** <float32>[R] sum_v p log p per row (the negated teacher entropy: the KL's constant part). */
  negEntropy: Tensor1D;
}

/** The teacher's K most probable tokens per real target row (what the logit cache stores). */
export interface TopKTeacherTargets {
  kind: "topk";
  temperature: number;
  /** R */
  rows: number;
  /** K */
  k: number;
  /** <int32>[R, K] vocabulary ids, most probable first. */
  indices: Int32Array;
  /** <float32>[R, K] their log-probabilities log softmax(z_teacher / T). */
  logProbs: Float32Array;
}

export type TeacherTargets = FullTeacherTargets | TopKTeacherTargets;

/** How a top-K teacher's missing mass is treated (see the file comment). */
export type TopKTail = "spread" | "renormalize";

export interface KdLossOptions {
  /** Weight of the KL term in [0, 1]; 1 - alpha weighs the label-smoothed cross-entropy. */
  alpha: number;
  /** Softmax temperature T > 0 of both distributions in the KL (the teacher targets' own). */
  temperature: number;
  /** Label smoothing eps in [0, 1) of the cross-entropy term. */
  labelSmoothing: number;
  /** Top-K teachers only (default "spread"). */
  tail?: TopKTail;
}

export interface KdLoss {
  /** alpha * T^2 * kl + (1 - alpha) * ce: the training loss per real target token. */
  loss: Scalar;
  /** Mean KL(p || q) per real target token (without the T^2 factor). */
  kl: Scalar;
  /** Mean label-smoothed cross-entropy against the batch's targets. */
  ce: Scalar;
  /** Mean negative log-likelihood of the targets (T = 1, no smoothing): perplexity and dev loss. */
  nll: Scalar;
  /** R: real target tokens. */
  tokens: number;
}

/** Throws DistillError on alpha outside [0, 1], T <= 0, or smoothing outside [0, 1). */
export function checkKdOptions(o: KdLossOptions): void {
  if (!(Number.isFinite(o.alpha) && o.alpha >= 0 && o.alpha <= 1)) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `distillation alpha must be in [0, 1] (the KL term's weight), got ${o.alpha}`,
    );
  }
  if (!(Number.isFinite(o.temperature) && o.temperature > 0)) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `distillation temperature must be a finite number > 0, got ${o.temperature}`,
    );
  }
  if (!(o.labelSmoothing >= 0 && o.labelSmoothing < 1)) {
    throw new DistillError("INVALID_ARGUMENT", `label smoothing must be in [0, 1), got ${o.labelSmoothing}`);
  }
  if (o.tail !== undefined && o.tail !== "spread" && o.tail !== "renormalize") {
    throw new DistillError("INVALID_ARGUMENT", `tail must be 'spread' or 'renormalize', got '${o.tail}'`);
  }
}

/** Indices of the rows with mask = 1: <int32>[R]. */
export function realRows(mask: ArrayLike<number>): Int32Array {
  let R = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) R++;
  const rows = new Int32Array(R);
  let j = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) rows[j++] = i;
  return rows;
}

/**
 * Per-row coefficients of a top-K teacher's KL: KL_r = constant_r - sum_K coef_rk log q[r, i_rk]
 * - tail_r sum_V log q[r, v]. Float64 arithmetic in, float32 out.
 */
function topKCoefficients(
  t: TopKTeacherTargets,
  V: number,
  tail: TopKTail,
): { constant: Float32Array; coef: Float32Array; tail: Float32Array; anyTail: boolean } {
  const { rows: R, k: K } = t;
  const constant = new Float32Array(R);
  const coef = new Float32Array(R * K);
  const tailW = new Float32Array(R);
  let anyTail = false;
  for (let r = 0; r < R; r++) {
    let mass = 0;
    for (let j = 0; j < K; j++) mass += Math.exp(t.logProbs[r * K + j] as number);
    let c = 0;
    if (tail === "renormalize") {
      const logMass = Math.log(mass);
      for (let j = 0; j < K; j++) {
        const lp = (t.logProbs[r * K + j] as number) - logMass;
        const p = Math.exp(lp);
        coef[r * K + j] = p;
        c += p * lp;
      }
    } else {
      const rest = K < V ? Math.max(0, 1 - mass) : 0;
      const u = rest > 0 ? rest / (V - K) : 0;
      for (let j = 0; j < K; j++) {
        const lp = t.logProbs[r * K + j] as number;
        const p = Math.exp(lp);
        coef[r * K + j] = p - u;
        c += p * lp;
      }
      if (u > 0) {
        c += rest * Math.log(u);
        tailW[r] = u;
        anyTail = true;
      }
    }
    constant[r] = c;
  }
  return { constant, coef, tail: tailW, anyTail };
}

/**
 * The word-level distillation loss of one batch (see the file comment).
 *
 * logits: <float32>[N, V] student logits; teacher: its distribution on the R real rows;
 * targets: <int32>[N] reference tokens; mask: [N] 1 = real target token.
 * Returns tensors the caller owns (use inside tf.tidy or a gradient scope).
 */
export function distillationLoss(
  logits: Tensor2D,
  teacher: TeacherTargets,
  targets: Int32Array,
  mask: ArrayLike<number>,
  opts: KdLossOptions,
): KdLoss {
  checkKdOptions(opts);
  const [N, V] = logits.shape;
  if (targets.length !== N || mask.length !== N) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `distillationLoss: ${N} logit rows but ${targets.length} targets and ${mask.length} mask entries`,
    );
  }
  const rows = realRows(mask);
  const R = rows.length;
  const teacherRows = teacher.kind === "full" ? (teacher.probs.shape[0] as number) : teacher.rows;
  if (teacherRows !== R) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `distillationLoss: the teacher targets cover ${teacherRows} rows, the batch has ${R} real target tokens; they belong to another batch`,
    );
  }
  if (teacher.kind === "full" && teacher.probs.shape[1] !== V) {
    throw new DistillError(
      "VOCAB_MISMATCH",
      `distillationLoss: teacher vocabulary ${teacher.probs.shape[1]}, student vocabulary ${V}`,
    );
  }
  if (teacher.kind === "topk") {
    if (teacher.indices.length !== R * teacher.k || teacher.logProbs.length !== R * teacher.k) {
      throw new DistillError(
        "INVALID_ARGUMENT",
        `distillationLoss: top-${teacher.k} targets of ${R} rows need ${R * teacher.k} indices and log-probs, got ${teacher.indices.length} and ${teacher.logProbs.length}`,
      );
    }
    for (let i = 0; i < teacher.indices.length; i++) {
      const v = teacher.indices[i] as number;
      if (!(v >= 0 && v < V)) {
        throw new DistillError(
          "VOCAB_MISMATCH",
          `distillationLoss: teacher token id ${v} is outside the student vocabulary [0, ${V})`,
        );
      }
    }
  }
  if (Math.abs(teacher.temperature - opts.temperature) > 1e-12 * opts.temperature) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `distillationLoss: the teacher targets were softened at temperature ${teacher.temperature}, the loss uses ${opts.temperature}`,
    );
  }
  const targetFlat = new Int32Array(R);
  for (let r = 0; r < R; r++) {
    const row = rows[r] as number;
    const y = targets[row] as number;
    if (!(y >= 0 && y < V)) {
      throw new DistillError(
        "INVALID_ARGUMENT",
        `target ${y} at row ${row} is outside the vocabulary [0, ${V})`,
      );
    }
    targetFlat[r] = r * V + y;
  }
  const { alpha, temperature: T, labelSmoothing: eps } = opts;
  const tail = opts.tail ?? "spread";
  const coefs = teacher.kind === "topk" ? topKCoefficients(teacher, V, tail) : undefined;

  return tidy(() => {
    if (R === 0) {
      const zero = mul(sum(logits), 0) as Scalar;
      return { loss: zero, kl: scalar(0), ce: scalar(0), nll: scalar(0), tokens: 0 };
    }
    const zRV = R === N ? logits : (gather(logits, tensor1d(rows, "int32")) as Tensor2D);
    const logpRV = logSoftmax(zRV);
    const nllR = neg(gather(reshape(logpRV, [R * V]), tensor1d(targetFlat, "int32"))) as Tensor1D;
    const nll = mean(nllR) as Scalar;
    const ce = (eps === 0 ? nll : add(mul(nll, 1 - eps), mul(neg(mean(logpRV)), eps))) as Scalar;
    if (alpha === 0) return { loss: ce, kl: scalar(0), ce, nll, tokens: R };

    const logqRV = T === 1 ? logpRV : logSoftmax(div(zRV, T) as Tensor2D);
    let klR: Tensor1D;
    if (teacher.kind === "full") {
      klR = sub(teacher.negEntropy, sum(mul(teacher.probs, logqRV), 1)) as Tensor1D;
    } else {
      const c = coefs as NonNullable<typeof coefs>;
      const K = teacher.k;
      const flat = new Int32Array(R * K);
      for (let r = 0; r < R; r++)
        for (let j = 0; j < K; j++) flat[r * K + j] = r * V + (teacher.indices[r * K + j] as number);
      const logqRK = reshape(gather(reshape(logqRV, [R * V]), tensor1d(flat, "int32")), [R, K]);
      klR = sub(tensor1d(c.constant), sum(mul(tensor2d(c.coef, [R, K]), logqRK), 1)) as Tensor1D;
      if (c.anyTail) klR = sub(klR, mul(tensor1d(c.tail), sum(logqRV, 1))) as Tensor1D;
    }
    const kl = mean(klR) as Scalar;
    const kd = mul(kl, T * T) as Scalar;
    const loss = (alpha === 1 ? kd : add(mul(kd, alpha), mul(ce, 1 - alpha))) as Scalar;
    return { loss, kl, ce, nll, tokens: R };
  });
}
