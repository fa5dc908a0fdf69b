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
//
// The gradient is written out (tf.customGrad) rather than left to autodiff: per row r and
// vocabulary entry v, with s = softmax(z), q = softmax(z / T), P_r = sum_v p_r[v] and
// w_r = 1/R on real rows (0 on padding),
//   d KL  / d z[r, v] = w_r (q[r, v] P_r - p_r[v]) / T
//   d CE  / d z[r, v] = w_r (s[r, v] - (1 - eps) [v = y_r] - eps / V)
//   d NLL / d z[r, v] = w_r (s[r, v] - [v = y_r])
// which costs a few fused passes over [N, V] where tfjs's chain of reductions and
// broadcasts (each materialising [N, V] ones in JavaScript on CPU backends) cost several
// times more. Tests check it against plain-loop references and finite differences.
import { logSoftmax } from "@polymoe/kernels";
import {
  add,
  customGrad,
  div,
  exp,
  type GradSaveFunc,
  gather,
  mul,
  neg,
  reshape,
  type Scalar,
  scalar,
  scatterND,
  slice,
  stack,
  sub,
  sum,
  type Tensor,
  type Tensor1D,
  type Tensor2D,
  tensor1d,
  tensor2d,
} from "@tensorflow/tfjs-core";

import { DistillError } from "./errors.js";

/** The teacher's temperature-softened distribution over the whole vocabulary, per target row. */
export interface FullTeacherTargets {
  kind: "full";
  temperature: number;
  /** R: real target rows. */
  rows: number;
  /** <float32>[N, V] softmax(z_teacher / T) on real target rows, zero rows on padding. */
  probs: Tensor2D;
  /** <float32>[N] sum_v probs per row (1 up to rounding on real rows, 0 on padding). */
  mass: Float32Array;
  /** Sum over real rows of sum_v p log p (the negated teacher entropies: the KL's constant part). */
  negEntropy: number;
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
 * A top-K teacher as the KL needs it, per real row r: p^_r = u_r everywhere plus coef_rk at
 * the K kept ids; constant_r = sum_v p^ log p^; mass_r = sum_v p^. Float64 arithmetic.
 */
function topKCoefficients(t: TopKTeacherTargets, V: number, tail: TopKTail) {
  const { rows: R, k: K } = t;
  const constant = new Float64Array(R);
  const coef = new Float32Array(R * K);
  const u = new Float64Array(R);
  const mass = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    let kept = 0;
    for (let j = 0; j < K; j++) kept += Math.exp(t.logProbs[r * K + j] as number);
    let c = 0;
    if (tail === "renormalize") {
      const logKept = Math.log(kept);
      let m = 0;
      for (let j = 0; j < K; j++) {
        const lp = (t.logProbs[r * K + j] as number) - logKept;
        const p = Math.exp(lp);
        coef[r * K + j] = p;
        c += p * lp;
        m += p;
      }
      mass[r] = m;
    } else {
      const rest = K < V ? Math.max(0, 1 - kept) : 0;
      const ur = rest > 0 ? rest / (V - K) : 0;
      for (let j = 0; j < K; j++) {
        const lp = t.logProbs[r * K + j] as number;
        const p = Math.exp(lp);
        coef[r * K + j] = p - ur;
        c += p * lp;
      }
      if (ur > 0) c += rest * Math.log(ur);
      u[r] = ur;
      mass[r] = kept + rest;
    }
    constant[r] = c;
  }
  return { constant, coef, u, mass };
}

/**
 * The word-level distillation loss of one batch (see the file comment).
 *
 * logits: <float32>[N, V] student logits; teacher: its distribution on the batch's target
 * rows; targets: <int32>[N] reference tokens; mask: [N] 1 = real target token.
 * Returns tensors the caller owns (use inside tf.tidy or a gradient scope); all four
 * scalars are differentiable.
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
  if (teacher.kind === "full" && (teacher.probs.shape[0] !== N || teacher.probs.shape[1] !== V)) {
    throw new DistillError(
      teacher.probs.shape[1] !== V ? "VOCAB_MISMATCH" : "INVALID_ARGUMENT",
      teacher.probs.shape[1] !== V
        ? `distillationLoss: teacher vocabulary ${teacher.probs.shape[1]}, student vocabulary ${V}`
        : `distillationLoss: the teacher targets cover ${teacher.probs.shape[0]} rows, the batch has ${N}; they belong to another batch`,
    );
  }
  if (teacher.rows !== R) {
    throw new DistillError(
      "INVALID_ARGUMENT",
      `distillationLoss: the teacher targets cover ${teacher.rows} real target tokens, the batch has ${R}; they belong to another batch`,
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
  // Per padded row: its flat index of the target, and 1 / R on real rows (0 on padding).
  const targetFlat = new Int32Array(N);
  const weight = new Float32Array(N);
  for (const row of rows) {
    const y = targets[row] as number;
    if (!(y >= 0 && y < V)) {
      throw new DistillError(
        "INVALID_ARGUMENT",
        `target ${y} at row ${row} is outside the vocabulary [0, ${V})`,
      );
    }
    targetFlat[row] = row * V + y;
    weight[row] = 1 / R;
  }
  const { alpha, temperature: T, labelSmoothing: eps } = opts;
  const tail = opts.tail ?? "spread";
  if (R === 0) {
    const zero = mul(sum(logits), 0) as Scalar;
    return { loss: zero, kl: mul(zero, 1), ce: mul(zero, 1), nll: mul(zero, 1), tokens: 0 };
  }
  const useKl = alpha > 0;
  const top = teacher.kind === "topk" && useKl ? topKCoefficients(teacher, V, tail) : undefined;
  // Per padded row n: the KL's dense part u_n and teacher mass P_n; sparse KL entries (flat ids).
  const uN = new Float32Array(N);
  const massN = new Float32Array(N);
  let klConstant = 0;
  let sparseKl: { flat: Int32Array; coef: Float32Array } | undefined;
  if (teacher.kind === "full") {
    if (useKl) massN.set(teacher.mass);
    klConstant = teacher.negEntropy;
  } else if (top) {
    const K = teacher.k;
    const flat = new Int32Array(R * K);
    for (let r = 0; r < R; r++) {
      const row = rows[r] as number;
      uN[row] = top.u[r] as number;
      massN[row] = top.mass[r] as number;
      klConstant += top.constant[r] as number;
      for (let j = 0; j < K; j++) flat[r * K + j] = row * V + (teacher.indices[r * K + j] as number);
    }
    sparseKl = { flat, coef: top.coef };
  }
  const anyTail = uN.some((x) => x > 0);
  const probs = teacher.kind === "full" ? teacher.probs : undefined;

  // value = [loss, kl, ce, nll]; the gradient of each is written out (see the file comment).
  const core = customGrad((...args: (Tensor | GradSaveFunc)[]) => {
    const zNV = args[0] as Tensor2D;
    const save = args[1] as GradSaveFunc;
    const logp = logSoftmax(zNV);
    const logq = T === 1 ? logp : logSoftmax(div(zNV, T) as Tensor2D);
    save([logp, logq]);
    const w = tensor1d(weight);
    const nllN = neg(gather(reshape(logp, [N * V]), tensor1d(targetFlat, "int32")));
    const nll = sum(mul(nllN, w));
    const ce = eps === 0 ? nll : add(mul(nll, 1 - eps), mul(sum(mul(sum(logp, 1), w)), -eps / V));
    let kl: Tensor = scalar(0);
    if (useKl) {
      let cross: Tensor; // sum over real rows of sum_v p^ log q
      if (probs) cross = sum(mul(probs, logq));
      else {
        const s = sparseKl as NonNullable<typeof sparseKl>;
        cross = sum(mul(tensor1d(s.coef), gather(reshape(logq, [N * V]), tensor1d(s.flat, "int32"))));
        if (anyTail) cross = add(cross, sum(mul(tensor1d(uN), sum(logq, 1))));
      }
      kl = div(sub(klConstant, cross), R);
    }
    const loss =
      alpha === 0 ? ce : alpha === 1 ? mul(kl, T * T) : add(mul(kl, alpha * T * T), mul(ce, 1 - alpha));
    return {
      value: stack([loss, kl, ce, nll]) as Tensor1D,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [d0, d1, d2, d3] = Array.from(dy.dataSync());
        const cKl = useKl ? (d0 as number) * alpha * T * T + (d1 as number) : 0;
        const cCe = (d0 as number) * (alpha === 0 ? 1 : 1 - alpha) + (d2 as number);
        const cNll = d3 as number;
        const [lp, lq] = saved as [Tensor2D, Tensor2D];
        // Row coefficients: g = s * a + q * b + c (+ sparse entries) - probs * f.
        const a = new Float32Array(N);
        const b = new Float32Array(N);
        const c = new Float32Array(N);
        const f = new Float32Array(N);
        for (const n of rows) {
          const wn = weight[n] as number;
          a[n] = wn * (cCe + cNll);
          b[n] = (wn * cKl * (massN[n] as number)) / T;
          c[n] = -wn * ((cCe * eps) / V + (cKl * (uN[n] as number)) / T);
          f[n] = (wn * cKl) / T;
        }
        const col = (x: Float32Array) => tensor2d(x, [N, 1]);
        let g: Tensor =
          T === 1
            ? mul(exp(lp), col(a.map((x, i) => x + (b[i] as number))))
            : add(mul(exp(lp), col(a)), mul(exp(lq), col(b)));
        g = add(g, col(c));
        if (probs && cKl !== 0) g = sub(g, mul(probs, col(f)));
        // Sparse entries: -(w (cCe (1 - eps) + cNll)) at the targets, -(w cKl / T) coef at the kept ids.
        const K = sparseKl && cKl !== 0 ? sparseKl.coef.length / R : 0;
        const ids = new Int32Array(R + R * K);
        const vals = new Float32Array(R + R * K);
        rows.forEach((n, r) => {
          const wn = weight[n] as number;
          ids[r] = targetFlat[n] as number;
          vals[r] = -wn * (cCe * (1 - eps) + cNll);
          for (let j = 0; j < K; j++) {
            ids[R + r * K + j] = (sparseKl as NonNullable<typeof sparseKl>).flat[r * K + j] as number;
            vals[R + r * K + j] =
              (-wn * cKl * ((sparseKl as NonNullable<typeof sparseKl>).coef[r * K + j] as number)) / T;
          }
        });
        const sparse = scatterND(tensor2d(ids, [ids.length, 1], "int32"), tensor1d(vals), [N * V]);
        return [add(g, reshape(sparse, [N, V]))];
      },
    };
  });
  const v = core(logits) as Tensor1D;
  const pick = (i: number) => reshape(slice(v, [i], [1]), []) as Scalar;
  return { loss: pick(0), kl: pick(1), ce: pick(2), nll: pick(3), tokens: R };
}
