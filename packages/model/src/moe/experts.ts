import { gelu, groupedMatMul } from "@polymoe/kernels";
import {
  add,
  clone,
  concat,
  customGrad,
  type GradSaveFunc,
  gather,
  matMul,
  randomNormal,
  relu,
  reshape,
  slice,
  stack,
  type Tensor,
  type Tensor2D,
  type Tensor3D,
  tensor1d,
  tidy,
  type Variable,
  variable,
  zeros,
  zerosLike,
} from "@tensorflow/tfjs-core";

import { ModelError } from "../errors.js";
import type { ExpertSlicing } from "./exchange.js";
import type { ExpertPager } from "./pager.js";

/** Where a rank's experts sit in the layer: global ids and tensor slicing. */
export interface ExpertPlacement {
  /** Global id of the first local expert (expert parallelism). Default 0. */
  firstExpert?: number;
  /** Tensor slicing of each expert across a tensor-parallel group. */
  slicing?: ExpertSlicing;
  /**
   * Paged experts: no expert variables; parameters come from `pager` under
   * `name` (the layer's expert parameter prefix without the model namespace).
   * Not combinable with expert parallelism or tensor slicing.
   */
  paging?: { pager: ExpertPager; name: string };
}

/**
 * E two-layer FFN experts evaluated together, either as one batched matmul per
 * layer over a capacity buffer [E, C, M] (`apply`), or as grouped matmuls over
 * the rows each expert was actually routed (`applyGrouped`, `applyBlocks`).
 * w1 [E, M, F], b1 [E, F], w2 [E, F, M], b2 [E, M]. Under tensor slicing F is
 * this rank's slice, dFF / slicing.size, and b2 is added once, after the
 * slices' partial outputs are summed.
 *
 * Initialisation depends only on (seed, global expert id): expert e draws
 * w1 from seed + 2e and w2 from seed + 2e + 1 at full width, then keeps its
 * slice, so any expert-/tensor-parallel layout starts from the same weights.
 */
export class BatchedExperts {
  private readonly vars: { w1: Variable; w2: Variable } | null;
  readonly b1: Variable | null;
  readonly b2: Variable | null;
  /** F of this rank's slice (dFF without tensor slicing). */
  readonly localFF: number;
  readonly slicing: ExpertSlicing | null;
  /** Paged experts (see ExpertPlacement.paging), else null. */
  readonly paging: { pager: ExpertPager; name: string } | null;

  constructor(
    readonly numExperts: number,
    readonly dModel: number,
    readonly dFF: number,
    readonly activation: "relu" | "gelu",
    bias: boolean,
    seed: number,
    name: string,
    trainable = true,
    placement: ExpertPlacement = {},
  ) {
    const [E, M, F] = [numExperts, dModel, dFF];
    const first = placement.firstExpert ?? 0;
    this.slicing = placement.slicing && placement.slicing.size > 1 ? placement.slicing : null;
    const tp = this.slicing?.size ?? 1;
    const k = this.slicing?.rank ?? 0;
    if (F % tp !== 0) {
      throw new ModelError(
        "INVALID_CONFIG",
        `${name}: dFF (${F}) must be divisible by the tensor-parallel size (${tp})`,
      );
    }
    const Fl = F / tp;
    this.localFF = Fl;
    this.paging = placement.paging ?? null;
    if (this.paging) {
      if (tp > 1 || first !== 0) {
        throw new ModelError(
          "INVALID_CONFIG",
          `${name}: paged experts cannot be combined with expert parallelism or tensor slicing yet; ` +
            "train paged experts in one process",
        );
      }
      const draw = (shape: [number, number], std: number, s: number) =>
        tidy(() => {
          const t = randomNormal(shape, 0, std, "float32", s);
          const out = t.dataSync() as Float32Array;
          return Float32Array.from(out);
        });
      this.paging.pager.register({
        name: this.paging.name,
        numExperts: E,
        dModel: M,
        dFF: F,
        bias,
        // The same draws as the resident layout: expert e from seed + 2e and seed + 2e + 1.
        init: (e) => ({
          w1: draw([M, F], 1 / Math.sqrt(M), seed + 2 * e),
          w2: draw([F, M], 1 / Math.sqrt(F), seed + 2 * e + 1),
        }),
      });
      this.vars = null;
      this.b1 = null;
      this.b2 = null;
      this.bias = bias;
      return;
    }
    this.bias = bias;
    const [w1, w2] = tidy(() => {
      const w1s: Tensor2D[] = [];
      const w2s: Tensor2D[] = [];
      for (let l = 0; l < E; l++) {
        const e = first + l;
        const a = randomNormal([M, F], 0, 1 / Math.sqrt(M), "float32", seed + 2 * e) as Tensor2D;
        const b = randomNormal([F, M], 0, 1 / Math.sqrt(F), "float32", seed + 2 * e + 1) as Tensor2D;
        w1s.push(tp === 1 ? a : (slice(a, [0, k * Fl], [M, Fl]) as Tensor2D));
        w2s.push(tp === 1 ? b : (slice(b, [k * Fl, 0], [Fl, M]) as Tensor2D));
      }
      return [stack(w1s) as Tensor3D, stack(w2s) as Tensor3D];
    });
    this.vars = {
      w1: variable(w1, trainable, `${name}.w1`),
      w2: variable(w2, trainable, `${name}.w2`),
    };
    w1.dispose();
    w2.dispose();
    const zeroVariable = (shape: number[], suffix: string) => {
      const z = zeros(shape);
      const v = variable(z, trainable, `${name}.${suffix}`);
      z.dispose();
      return v;
    };
    this.b1 = bias ? zeroVariable([E, Fl], "b1") : null;
    this.b2 = bias ? zeroVariable([E, M], "b2") : null;
  }

  /** Experts have biases (resident or paged). */
  private readonly bias: boolean;

  /** <float32>[E, M, F] (resident experts only). */
  get w1(): Variable {
    return this.resident().w1;
  }

  /** <float32>[E, F, M] (resident experts only). */
  get w2(): Variable {
    return this.resident().w2;
  }

  private resident(): { w1: Variable; w2: Variable } {
    if (!this.vars) {
      throw new ModelError(
        "INVALID_CONFIG",
        `${this.paging?.name}: the experts are paged (their parameters live in the pager), not tfjs variables`,
      );
    }
    return this.vars;
  }

  /** Parameters of the experts (resident or paged). */
  numParameters(): number {
    const { numExperts: E, dModel: M, localFF: F } = this;
    return E * (2 * M * F + (this.bias ? F + M : 0));
  }

  /** buf: <float32>[E, C, M] -> <float32>[E, C, M]. */
  apply(buf: Tensor3D): Tensor3D {
    const [E, , M] = buf.shape;
    const F = this.localFF;
    const x = this.slicing ? this.slicing.enter(buf) : buf;
    let h = matMul(x, this.w1) as Tensor3D;
    if (this.b1) h = add(h, reshape(this.b1, [E, 1, F])) as Tensor3D;
    h = (this.activation === "gelu" ? gelu(h) : relu(h)) as Tensor3D;
    let out = matMul(h, this.w2) as Tensor3D;
    if (this.slicing) out = this.slicing.reduce(out);
    if (this.b2) out = add(out, reshape(this.b2, [E, 1, M])) as Tensor3D;
    return out;
  }

  /**
   * Grouped form: rows: <float32>[R, M] expert-buffer rows; segments:
   * (start, rows, expert) triples saying which expert processes which rows
   * (see groupedMatMul). Each expert runs only on its own rows, so cost follows
   * the routed tokens, not the capacity. Rows no segment covers come out zero
   * (the activation maps 0 to 0). Returns <float32>[R, M].
   */
  applyGrouped(rows: Tensor2D, segments: Int32Array): Tensor2D {
    if (this.paging) return this.applyPaged(rows, segments, this.paging);
    const x = this.slicing ? this.slicing.enter(rows) : rows;
    const h = groupedMatMul(x, this.w1 as Tensor3D, segments, this.b1 ? { bias: this.b1 as Tensor2D } : {});
    const a = (this.activation === "gelu" ? gelu(h) : relu(h)) as Tensor2D;
    if (!this.slicing) {
      return groupedMatMul(a, this.w2 as Tensor3D, segments, this.b2 ? { bias: this.b2 as Tensor2D } : {});
    }
    // Sliced: sum the partial products over the group, then add b2 once, to covered rows only.
    const out = this.slicing.reduce(groupedMatMul(a, this.w2 as Tensor3D, segments));
    if (!this.b2) return out;
    const R = rows.shape[0];
    const E = this.numExperts;
    const expertOfRow = new Int32Array(R).fill(E); // E = the appended zero row
    for (let s = 0; s < segments.length; s += 3) {
      expertOfRow.fill(
        segments[s + 2] as number,
        segments[s] as number,
        (segments[s] as number) + (segments[s + 1] as number),
      );
    }
    const b2z = concat([this.b2 as Tensor2D, zeros([1, this.dModel])]);
    return add(out, gather(b2z, tensor1d(expertOfRow, "int32"))) as Tensor2D;
  }

  /**
   * What an expert-parallel exchange delivers: buf <float32>[E, R, M] holding
   * W blocks of R / W rows per expert (one per source rank), `counts`
   * <int32>[E, W] valid rows at the start of each block. Only valid rows are
   * computed (grouped matmuls); padding rows come out zero. Without counts
   * every row is valid (`apply`). Returns <float32>[E, R, M].
   */
  applyBlocks(buf: Tensor3D, counts?: Int32Array): Tensor3D {
    if (!counts) return this.apply(buf);
    const [E, R, M] = buf.shape;
    const W = counts.length / E;
    if (!Number.isInteger(W) || W < 1 || R % W !== 0) {
      throw new ModelError(
        "SHAPE_MISMATCH",
        `applyBlocks: counts has ${counts.length} entries for ${E} experts and ${R} rows per expert; ` +
          "expected experts * blocks entries, with the blocks dividing the rows",
      );
    }
    const block = R / W;
    const segments = new Int32Array(3 * E * W);
    for (let e = 0; e < E; e++) {
      for (let i = 0; i < W; i++) {
        const n = counts[e * W + i] as number;
        if (!(n >= 0 && n <= block)) {
          throw new ModelError(
            "SHAPE_MISMATCH",
            `applyBlocks: counts[${e}, ${i}] = ${n} is outside the block of ${block} rows`,
          );
        }
        const s = 3 * (e * W + i);
        segments[s] = e * R + i * block;
        segments[s + 1] = n;
        segments[s + 2] = e;
      }
    }
    const out = this.applyGrouped(reshape(buf, [E * R, M]) as Tensor2D, segments);
    return reshape(out, [E, R, M]) as Tensor3D;
  }

  /**
   * applyGrouped over paged experts: fetches the experts the segments name
   * (A of them, ascending), runs the grouped FFN on compact weights
   * [A, ...] with the segments renumbered, and routes the weights'
   * gradients to the pager (through identity nodes anchored on
   * pager.anchor). Same arithmetic per expert as the resident path.
   */
  private applyPaged(
    rows: Tensor2D,
    segments: Int32Array,
    paging: { pager: ExpertPager; name: string },
  ): Tensor2D {
    const E = this.numExperts;
    const used = new Uint8Array(E);
    for (let s = 0; s < segments.length; s += 3) {
      if ((segments[s + 1] as number) > 0) used[segments[s + 2] as number] = 1;
    }
    const active: number[] = [];
    const compactOf = new Int32Array(E).fill(-1);
    for (let e = 0; e < E; e++) {
      if (used[e]) {
        compactOf[e] = active.length;
        active.push(e);
      }
    }
    if (active.length === 0) return zeros([rows.shape[0], this.dModel]);
    const segs: number[] = [];
    for (let s = 0; s < segments.length; s += 3) {
      if ((segments[s + 1] as number) === 0) continue;
      segs.push(
        segments[s] as number,
        segments[s + 1] as number,
        compactOf[segments[s + 2] as number] as number,
      );
    }
    const compact = Int32Array.from(segs);
    const { pager, name } = paging;
    const w = pager.fetch(name, Int32Array.from(active));
    // Identity nodes whose backward hands the weight's gradient to the pager.
    const sink = <T extends Tensor2D | Tensor3D>(t: T): T =>
      customGrad((...args: (Tensor | GradSaveFunc)[]) => ({
        value: clone(args[0] as Tensor),
        gradFunc: (dy: Tensor | Tensor[]) => {
          const g = dy as Tensor;
          pager.accumulate(t, g as T);
          return [g, zerosLike(args[1] as Tensor)];
        },
      }))(t, pager.anchor) as T;
    const w1 = sink(w.w1);
    const w2 = sink(w.w2);
    const b1 = w.b1 ? sink(w.b1) : null;
    const b2 = w.b2 ? sink(w.b2) : null;
    const h = groupedMatMul(rows, w1, compact, b1 ? { bias: b1 } : {});
    const a = (this.activation === "gelu" ? gelu(h) : relu(h)) as Tensor2D;
    return groupedMatMul(a, w2, compact, b2 ? { bias: b2 } : {});
  }

  variables(): Record<string, Variable> {
    if (!this.vars) return {};
    const v: Record<string, Variable> = { w1: this.vars.w1, w2: this.vars.w2 };
    if (this.b1) v.b1 = this.b1;
    if (this.b2) v.b2 = this.b2;
    return v;
  }

  /**
   * The axis of each variable's per-expert tensor (w1 [M, F], b1 [F],
   * w2 [F, M], b2 [M]) that tensor slicing splits, or null (replicated).
   */
  slicedAxes(): Record<string, number | null> {
    const v: Record<string, number | null> = { w1: 1, w2: 0 };
    if (this.b1) v.b1 = 0;
    if (this.b2) v.b2 = null;
    return v;
  }

  dispose(): void {
    for (const v of Object.values(this.variables())) v.dispose();
  }
}
