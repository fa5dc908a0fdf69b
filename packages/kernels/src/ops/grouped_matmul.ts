import {
  add,
  concat,
  customGrad,
  type GradSaveFunc,
  gather,
  matMul,
  reshape,
  type Tensor,
  type Tensor2D,
  type Tensor3D,
  tensor1d,
  tidy,
  zeros,
} from "@tensorflow/tfjs-core";

import { KernelError } from "../errors.js";
import { GroupedMatMul } from "../kernel_names.js";
import { assertFloat32, backendHasKernel, runKernel } from "./util.js";

/**
 * Checks (start, rows, expert) triples against a buffer of `rows` rows and E
 * experts: inside the buffer, known experts, no overlap.
 */
export function validateSegments(op: string, segments: Int32Array, rows: number, E: number): void {
  if (segments.length % 3 !== 0) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `${op}: segments must hold (start, rows, expert) triples, got ${segments.length} values`,
    );
  }
  const order: number[] = [];
  for (let s = 0; s < segments.length / 3; s++) {
    const start = segments[3 * s] as number;
    const n = segments[3 * s + 1] as number;
    const e = segments[3 * s + 2] as number;
    if (start < 0 || n < 0 || start + n > rows) {
      throw new KernelError(
        "INVALID_ARGUMENT",
        `${op}: segment ${s} covers rows [${start}, ${start + n}), outside the buffer's ${rows} rows`,
      );
    }
    if (e < 0 || e >= E) {
      throw new KernelError("INVALID_ARGUMENT", `${op}: segment ${s} names expert ${e}, not in [0, ${E})`);
    }
    order.push(s);
  }
  order.sort((a, b) => (segments[3 * a] as number) - (segments[3 * b] as number));
  let end = 0;
  for (const s of order) {
    const start = segments[3 * s] as number;
    if (start < end && (segments[3 * s + 1] as number) > 0) {
      throw new KernelError(
        "INVALID_ARGUMENT",
        `${op}: segment ${s} overlaps an earlier one at row ${start}`,
      );
    }
    end = Math.max(end, start + (segments[3 * s + 1] as number));
  }
}

/**
 * Index plan of the composite path: the segments' rows laid out per expert,
 * padded to the busiest expert, as gather indices in and out.
 */
interface GroupedPlan {
  cmax: number;
  /** [E * cmax] source row of each padded row; `rows` = the appended zero row. */
  srcOfPadded: Int32Array;
  /** [rows] padded row of each buffer row; E * cmax = the appended zero row. */
  paddedOfRow: Int32Array;
}

const plans = new WeakMap<Int32Array, Map<string, GroupedPlan>>();

function groupedPlan(segments: Int32Array, rows: number, E: number): GroupedPlan {
  const key = `${rows}:${E}`;
  let byShape = plans.get(segments);
  const cached = byShape?.get(key);
  if (cached) return cached;
  const perExpert = new Int32Array(E);
  for (let s = 0; s < segments.length / 3; s++)
    perExpert[segments[3 * s + 2] as number]! += segments[3 * s + 1] as number;
  const cmax = Math.max(1, ...perExpert);
  const srcOfPadded = new Int32Array(E * cmax).fill(rows);
  const paddedOfRow = new Int32Array(rows).fill(E * cmax);
  const used = new Int32Array(E);
  for (let s = 0; s < segments.length / 3; s++) {
    const start = segments[3 * s] as number;
    const n = segments[3 * s + 1] as number;
    const e = segments[3 * s + 2] as number;
    for (let r = start; r < start + n; r++) {
      const p = e * cmax + used[e]!++;
      srcOfPadded[p] = r;
      paddedOfRow[r] = p;
    }
  }
  const plan = { cmax, srcOfPadded, paddedOfRow };
  if (!byShape) {
    byShape = new Map();
    plans.set(segments, byShape);
  }
  byShape.set(key, plan);
  return plan;
}

/** Row gather by index with a zero row appended for out-of-range indices (= rows). */
function gatherRows(t: Tensor2D, idx: Int32Array): Tensor2D {
  return gather(concat([t, zeros([1, t.shape[1]])], 0), tensor1d(idx, "int32")) as Tensor2D;
}

/**
 * The two layout changes of the composite path, each the other's adjoint (the
 * index maps are inverse bijections on covered rows), with custom gradients:
 * no segment sums, which some backends (wasm) lack.
 */
function toPadded(x: Tensor2D, plan: GroupedPlan): Tensor2D {
  return customGrad((...args: (Tensor | GradSaveFunc)[]) => ({
    value: gatherRows(args[0] as Tensor2D, plan.srcOfPadded),
    gradFunc: (dy: Tensor) => gatherRows(dy as Tensor2D, plan.paddedOfRow),
  }))(x) as Tensor2D;
}

function fromPadded(yp: Tensor2D, plan: GroupedPlan): Tensor2D {
  return customGrad((...args: (Tensor | GradSaveFunc)[]) => ({
    value: gatherRows(args[0] as Tensor2D, plan.paddedOfRow),
    gradFunc: (dy: Tensor) => gatherRows(dy as Tensor2D, plan.srcOfPadded),
  }))(yp) as Tensor2D;
}

function compositeGrouped(
  x: Tensor2D,
  w: Tensor3D,
  bias: Tensor2D | undefined,
  segments: Int32Array,
  transposeW: boolean,
): Tensor2D {
  const [R, K] = x.shape;
  const E = w.shape[0];
  const N = transposeW ? w.shape[1] : w.shape[2];
  const plan = groupedPlan(segments, R, E);
  let yp: Tensor = matMul(reshape(toPadded(x, plan), [E, plan.cmax, K]), w, false, transposeW);
  if (bias) yp = add(yp, reshape(bias, [E, 1, N]));
  return fromPadded(reshape(yp, [E * plan.cmax, N]) as Tensor2D, plan);
}

/**
 * Grouped expert matmul (MegaBlocks-style): each expert multiplies only its
 * own rows of the expert buffer.
 *
 * x: <float32>[R, K] expert buffer rows; w: <float32>[E, K, N] (or [E, N, K]
 * with transposeW); segments: (start, rows, expert) triples — rows
 * [start, start + rows) of x go through expert `expert`; bias: optional
 * <float32>[E, N] (not with transposeW). Returns <float32>[R, N] with
 * y[r] = x[r] op(w[e]) + bias[e] on segment rows and zero on rows no segment
 * covers; their gradients are zero too. Differentiable in x, w and bias.
 * Native kernel on polymoe-native (cost proportional to the covered rows);
 * elsewhere gathers into a per-expert padded batch and one batched matMul.
 * Segments must not be mutated after the call (plans are cached per array).
 */
export function groupedMatMul(
  x: Tensor2D,
  w: Tensor3D,
  segments: Int32Array,
  opts: { bias?: Tensor2D; transposeW?: boolean } = {},
): Tensor2D {
  const op = "groupedMatMul";
  assertFloat32(x, "x", op);
  assertFloat32(w, "w", op);
  if (x.rank !== 2) throw new KernelError("SHAPE_MISMATCH", `${op}: x must be [rows, K], got [${x.shape}]`);
  if (w.rank !== 3)
    throw new KernelError("SHAPE_MISMATCH", `${op}: w must be [experts, K, N], got [${w.shape}]`);
  const transposeW = opts.transposeW ?? false;
  const [E, a, b] = w.shape;
  const K = transposeW ? b : a;
  const N = transposeW ? a : b;
  if (x.shape[1] !== K) {
    throw new KernelError(
      "SHAPE_MISMATCH",
      `${op}: x [${x.shape}] has ${x.shape[1]} columns but w [${w.shape}]${transposeW ? " (transposed)" : ""} takes ${K}`,
    );
  }
  const { bias } = opts;
  if (bias) {
    assertFloat32(bias, "bias", op);
    if (transposeW)
      throw new KernelError("INVALID_ARGUMENT", `${op}: bias is only supported with transposeW false`);
    if (bias.rank !== 2 || bias.shape[0] !== E || bias.shape[1] !== N) {
      throw new KernelError("SHAPE_MISMATCH", `${op}: bias must be [${E}, ${N}], got [${bias.shape}]`);
    }
  }
  validateSegments(op, segments, x.shape[0], E);
  return tidy(() => {
    if (backendHasKernel(GroupedMatMul)) {
      const inputs: Record<string, Tensor> = { x, w, segments: tensor1d(segments.slice(), "int32") };
      if (bias) inputs.bias = bias;
      return runKernel<Tensor2D>(GroupedMatMul, inputs, { transposeW });
    }
    return compositeGrouped(x, w, bias, segments, transposeW);
  });
}
