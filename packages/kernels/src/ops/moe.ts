import {
  concat,
  customGrad,
  type GradSaveFunc,
  gather,
  mul,
  ones,
  reshape,
  sum,
  type Tensor,
  type Tensor1D,
  type Tensor2D,
  tensor1d,
  tidy,
  zeros,
} from "@tensorflow/tfjs-core";

import { KernelError } from "../errors.js";
import { MoeCombine, MoeDispatch } from "../kernel_names.js";
import { assertFloat32, backendHasKernel, runKernel } from "./util.js";

/**
 * A routing as index pairs, on the host: pair p sends token row `token[p]` to
 * expert-buffer row `dest[p]` (= expert * capacity + slot), or is dropped when
 * `dest[p]` is -1. Kept destinations are unique. Token-choice routers emit
 * pairs token-major (p = t * k + choice); expert-choice routers expert-major.
 */
export interface MoePairs {
  token: Int32Array;
  dest: Int32Array;
}

function validatePairs(op: string, pairs: MoePairs, numTokens: number, rows: number): void {
  const { token, dest } = pairs;
  if (token.length !== dest.length) {
    throw new KernelError(
      "SHAPE_MISMATCH",
      `${op}: pairs.token has ${token.length} entries but pairs.dest has ${dest.length}`,
    );
  }
  const seen = new Int32Array(rows).fill(-1);
  for (let p = 0; p < token.length; p++) {
    const t = token[p] as number;
    const d = dest[p] as number;
    if (!(t >= 0 && t < numTokens)) {
      throw new KernelError(
        "INVALID_ARGUMENT",
        `${op}: pairs.token[${p}] = ${t} is not in [0, ${numTokens})`,
      );
    }
    if (d < -1 || d >= rows) {
      throw new KernelError(
        "INVALID_ARGUMENT",
        `${op}: pairs.dest[${p}] = ${d} is not -1 or in [0, ${rows})`,
      );
    }
    if (d >= 0) {
      if ((seen[d] as number) >= 0) {
        throw new KernelError(
          "INVALID_ARGUMENT",
          `${op}: pairs ${seen[d]} and ${p} both target buffer row ${d}; kept destinations must be unique`,
        );
      }
      seen[d] = p;
    }
  }
}

function checkWeight(op: string, weight: Tensor1D | undefined, P: number): void {
  if (!weight) return;
  assertFloat32(weight, "weight", op);
  if (weight.rank !== 1 || weight.shape[0] !== P) {
    throw new KernelError(
      "SHAPE_MISMATCH",
      `${op}: weight must have shape [${P}] (one per pair), got [${weight.shape}]`,
    );
  }
}

/**
 * Host-side index plans for the composite path, built once per pairs object:
 * for every buffer row its source token and pair (or the appended zero row /
 * zero weight), and for every token its pairs padded to the largest count
 * (so combine is a gather and a sum, never a segment sum).
 */
interface CompositePlan {
  srcOfRow: Int32Array; // [rows], T = the zero row
  pairOfRow: Int32Array; // [rows], P = a zero weight
  kmax: number;
  pairOfSlot: Int32Array; // [T * kmax], P = padding
  destOfSlot: Int32Array; // [T * kmax], rows = the zero row
  tokenOfPair: Int32Array; // [P]
  destOfPair: Int32Array; // [P], rows for dropped pairs
}

const plans = new WeakMap<MoePairs, Map<string, CompositePlan>>();

function compositePlan(pairs: MoePairs, T: number, rows: number): CompositePlan {
  const key = `${T}:${rows}`;
  let byShape = plans.get(pairs);
  const cached = byShape?.get(key);
  if (cached) return cached;
  const P = pairs.token.length;
  const srcOfRow = new Int32Array(rows).fill(T);
  const pairOfRow = new Int32Array(rows).fill(P);
  const perToken = new Int32Array(T);
  for (let p = 0; p < P; p++) {
    const d = pairs.dest[p] as number;
    if (d < 0) continue;
    srcOfRow[d] = pairs.token[p] as number;
    pairOfRow[d] = p;
    perToken[pairs.token[p] as number]!++;
  }
  const kmax = Math.max(1, ...perToken);
  const pairOfSlot = new Int32Array(T * kmax).fill(P);
  const destOfSlot = new Int32Array(T * kmax).fill(rows);
  const used = new Int32Array(T);
  for (let p = 0; p < P; p++) {
    const d = pairs.dest[p] as number;
    if (d < 0) continue;
    const t = pairs.token[p] as number;
    const slot = t * kmax + used[t]!++;
    pairOfSlot[slot] = p;
    destOfSlot[slot] = d;
  }
  const plan: CompositePlan = {
    srcOfRow,
    pairOfRow,
    kmax,
    pairOfSlot,
    destOfSlot,
    tokenOfPair: pairs.token.slice(),
    destOfPair: Int32Array.from(pairs.dest, (d) => (d >= 0 ? d : rows)),
  };
  if (!byShape) {
    byShape = new Map();
    plans.set(pairs, byShape);
  }
  byShape.set(key, plan);
  return plan;
}

const idx = (a: Int32Array) => tensor1d(a, "int32");
const withZeroRow = (t: Tensor2D) => concat([t, zeros([1, t.shape[1]])], 0) as Tensor2D;
const withZero = (t: Tensor1D) => concat([t, zeros([1])], 0) as Tensor1D;

/** buf[r] = w[pair of r] * x[src of r]: gathers only. */
function dispatchForward(x: Tensor2D, w: Tensor1D, plan: CompositePlan, rows: number): Tensor2D {
  const rowsX = gather(withZeroRow(x), idx(plan.srcOfRow));
  const rowW = gather(withZero(w), idx(plan.pairOfRow));
  return mul(rowsX, reshape(rowW, [rows, 1])) as Tensor2D;
}

/** y[t] = sum over t's pairs of w[p] * buf[dest[p]]: a padded gather and a sum. */
function combineForward(buf: Tensor2D, w: Tensor1D, plan: CompositePlan, T: number): Tensor2D {
  const M = buf.shape[1];
  const rowsB = gather(withZeroRow(buf), idx(plan.destOfSlot));
  const slotW = gather(withZero(w), idx(plan.pairOfSlot));
  return sum(reshape(mul(rowsB, reshape(slotW, [T * plan.kmax, 1])), [T, plan.kmax, M]), 1) as Tensor2D;
}

/** dw[p] = <a[token[p]], b[dest[p]]> (dropped pairs read b's zero row). */
function pairDot(a: Tensor2D, b: Tensor2D, plan: CompositePlan): Tensor1D {
  return sum(
    mul(gather(a, idx(plan.tokenOfPair)), gather(withZeroRow(b), idx(plan.destOfPair))),
    1,
  ) as Tensor1D;
}

/** Composite dispatch and combine, each the other's custom gradient (no segment sums). */
function compositeDispatch(x: Tensor2D, w: Tensor1D, plan: CompositePlan, rows: number): Tensor2D {
  const T = x.shape[0];
  return customGrad((...args: (Tensor | GradSaveFunc)[]) => {
    const [a, b, save] = args as [Tensor2D, Tensor1D, GradSaveFunc];
    save([a, b]);
    return {
      value: dispatchForward(a, b, plan, rows),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xs, ws] = saved as [Tensor2D, Tensor1D];
        return [combineForward(dy as Tensor2D, ws, plan, T), pairDot(xs, dy as Tensor2D, plan)];
      },
    };
  })(x, w) as Tensor2D;
}

function compositeCombine(buf: Tensor2D, w: Tensor1D, plan: CompositePlan, T: number): Tensor2D {
  const rows = buf.shape[0];
  return customGrad((...args: (Tensor | GradSaveFunc)[]) => {
    const [a, b, save] = args as [Tensor2D, Tensor1D, GradSaveFunc];
    save([a, b]);
    return {
      value: combineForward(a, b, plan, T),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [bs, ws] = saved as [Tensor2D, Tensor1D];
        return [dispatchForward(dy as Tensor2D, ws, plan, rows), pairDot(dy as Tensor2D, bs, plan)];
      },
    };
  })(buf, w) as Tensor2D;
}

/**
 * Gathers token rows into the expert buffer by index (no one-hot tensors).
 *
 * x: <float32>[T, M]; pairs: P index pairs (see MoePairs); rows: buffer rows
 * (experts * capacity); weight: optional <float32>[P] scale per pair.
 * Returns buf <float32>[rows, M] with buf[dest[p]] = weight[p] * x[token[p]],
 * zeros in rows no pair fills. Differentiable in x and weight; its adjoint is
 * moeCombine. Native kernel on polymoe-native; elsewhere gathers with a custom
 * gradient (pairs must not be mutated after the call: plans are cached per object).
 */
export function moeDispatch(x: Tensor2D, pairs: MoePairs, rows: number, weight?: Tensor1D): Tensor2D {
  assertFloat32(x, "x", "moeDispatch");
  if (x.rank !== 2)
    throw new KernelError("SHAPE_MISMATCH", `moeDispatch: x must be [tokens, dModel], got [${x.shape}]`);
  if (!Number.isInteger(rows) || rows < 0) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `moeDispatch: rows must be a non-negative integer, got ${rows}`,
    );
  }
  const T = x.shape[0];
  validatePairs("moeDispatch", pairs, T, rows);
  checkWeight("moeDispatch", weight, pairs.token.length);
  return tidy(() => {
    const w = weight ?? (ones([pairs.token.length]) as Tensor1D);
    if (backendHasKernel(MoeDispatch)) {
      const token = tensor1d(pairs.token.slice(), "int32");
      const dest = tensor1d(pairs.dest.slice(), "int32");
      return runKernel<Tensor2D>(MoeDispatch, { x, token, dest, weight: w }, { rows });
    }
    return compositeDispatch(x, w, compositePlan(pairs, T, rows), rows);
  });
}

/**
 * Scatters expert outputs back to their tokens, weighted, by index — the
 * adjoint of moeDispatch.
 *
 * buf: <float32>[rows, M]; pairs as for dispatch; numTokens: T; weight:
 * optional <float32>[P]. Returns y <float32>[T, M] with
 * y[t] = sum of weight[p] * buf[dest[p]] over kept pairs of token t.
 */
export function moeCombine(buf: Tensor2D, pairs: MoePairs, numTokens: number, weight?: Tensor1D): Tensor2D {
  assertFloat32(buf, "buf", "moeCombine");
  if (buf.rank !== 2) {
    throw new KernelError("SHAPE_MISMATCH", `moeCombine: buf must be [rows, dModel], got [${buf.shape}]`);
  }
  const rows = buf.shape[0];
  validatePairs("moeCombine", pairs, numTokens, rows);
  checkWeight("moeCombine", weight, pairs.token.length);
  return tidy(() => {
    const w = weight ?? (ones([pairs.token.length]) as Tensor1D);
    if (backendHasKernel(MoeCombine)) {
      const token = tensor1d(pairs.token.slice(), "int32");
      const dest = tensor1d(pairs.dest.slice(), "int32");
      return runKernel<Tensor2D>(MoeCombine, { buf, token, dest, weight: w }, { numTokens });
    }
    return compositeCombine(buf, w, compositePlan(pairs, numTokens, rows), numTokens);
  });
}
