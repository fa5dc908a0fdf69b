// The MoE layer. Axis legend: T tokens, E experts (E_local on this rank),
// C capacity (slots per expert), M model width, F expert hidden width,
// W expert-parallel ranks.
//
// Forward, in order:
//   1. route        x [T, M] -> pairs (token, dest = e*C + slot), combine weights [P]
//   2. dispatch     x [T, M] -> buf [E*C, M]               (index gather, no one-hot)
//   3. all-to-all   buf [E, C, M] -> [E_local, W*C, M]     (filled slots only, with
//                   their counts per (expert, source rank) block)
//   4. experts      [E_local, W*C, M] -> same              (grouped matmuls over the
//                   filled rows of each block)
//   With all experts local (W = 1), steps 2-6 use the packed layout instead:
//   buf [kept pairs, M] with each expert's rows back to back, and grouped
//   matmuls that run each expert on its own rows only (see packRows).
//   5. all-to-all   [E_local, W*C, M] -> [E, C, M]
//   6. combine      [E*C, M] -> y [T, M]                   (weighted index scatter-add)
import { gelu as geluOp, type MoePairs, moeCombine, moeDispatch } from "@polymoe/kernels";
import { createRouter, type RouteContext, type Router, type Routing } from "@polymoe/routers";
import { parseConfig } from "@polymoe/schema";
import {
  add,
  matMul,
  mul,
  randomNormal,
  relu,
  reshape,
  slice,
  softmax,
  type Tensor2D,
  type Tensor3D,
  tidy,
  type Variable,
  variable,
  zeros,
} from "@tensorflow/tfjs-core";

import { ModelError } from "../errors.js";
import { MoeLayerConfig, type MoeLayerConfigInput } from "./config.js";
import { type ExpertExchange, type ExpertSlicing, LOCAL_EXCHANGE } from "./exchange.js";
import { BatchedExperts } from "./experts.js";
import type { ExpertPager } from "./pager.js";

export interface MoeLayerInit {
  dModel: number;
  seed: number;
  /** Unique prefix of variable names, e.g. "decoder.layers.1.ffn". */
  name: string;
  /** Expert parallelism: the all-to-all hook (default: all experts local). */
  exchange?: ExpertExchange;
  /** Tensor slicing of the expert FFNs (default: none). */
  slicing?: ExpertSlicing;
  trainable?: boolean;
  /**
   * Paged experts: their parameters live in `pager` under `name` (the
   * layer's expert parameter prefix without the model namespace), fetched
   * for the experts each batch routes to. One process only.
   */
  paging?: { pager: ExpertPager; name: string };
}

/** One forward pass: the output and the routing record (losses and metrics inside). */
export interface MoeOutput {
  /** <float32>[T, M]. */
  y: Tensor2D;
  routing: Routing;
}

/** Parameters split by how data/expert parallelism and ZeRO treat them. */
export interface ParameterGroups {
  /** Expert weights: sharded over expert-parallel ranks, replicated over expert-data-parallel ones. */
  expert: Variable[];
  /** Everything else (router, residual FFN): replicated over all data-parallel ranks. */
  dense: Variable[];
}

/**
 * Packs a capacity layout (dest = expert * C + slot) without its padding: the
 * kept rows of each expert back to back, in slot order. Returns the remapped
 * pairs, the packed row count (at least 1, so buffers are never empty) and one
 * (start, rows, expert) segment per expert for the grouped expert matmuls.
 */
export function packRows(
  pairs: MoePairs,
  E: number,
  C: number,
): { pairs: MoePairs; rows: number; segments: Int32Array } {
  const occupied = new Uint8Array(E * C);
  for (const d of pairs.dest) if (d >= 0) occupied[d] = 1;
  const packedOf = new Int32Array(E * C);
  const segments = new Int32Array(E * 3);
  let next = 0;
  for (let e = 0; e < E; e++) {
    segments[3 * e] = next;
    for (let r = e * C; r < (e + 1) * C; r++) if (occupied[r]) packedOf[r] = next++;
    segments[3 * e + 1] = next - (segments[3 * e] as number);
    segments[3 * e + 2] = e;
  }
  const dest = Int32Array.from(pairs.dest, (d) => (d >= 0 ? (packedOf[d] as number) : -1));
  return { pairs: { token: pairs.token, dest }, rows: Math.max(1, next), segments };
}

/**
 * <int32>[E] slots of each expert's capacity that must travel: one past the
 * highest slot a pair was assigned (routers fill slots from 0, so this is the
 * kept count; a hole would travel as a zero row, never read).
 */
export function filledSlots(pairs: MoePairs, E: number, C: number): Int32Array {
  const counts = new Int32Array(E);
  for (const d of pairs.dest) {
    if (d < 0) continue;
    const e = Math.floor(d / C);
    counts[e] = Math.max(counts[e] as number, d - e * C + 1);
  }
  return counts;
}

export class MoeLayer {
  readonly config: MoeLayerConfig;
  readonly router: Router;
  readonly experts: BatchedExperts;
  readonly exchange: ExpertExchange;
  /** Residual MoE: dense FFN and the 2-way mixing gate. */
  private readonly residual: Record<string, Variable> | null;

  constructor(
    config: MoeLayerConfigInput | MoeLayerConfig,
    readonly init: MoeLayerInit,
  ) {
    this.config = parseConfig(MoeLayerConfig, config, { prefix: init.name });
    const { dModel, seed, name } = init;
    const trainable = init.trainable ?? true;
    const c = this.config;
    this.exchange = init.exchange ?? LOCAL_EXCHANGE;
    const W = this.exchange.worldSize;
    if (c.numExperts % W !== 0) {
      throw new ModelError(
        "INVALID_CONFIG",
        `${name}: numExperts (${c.numExperts}) must be divisible by the expert-parallel world size (${W})`,
      );
    }
    this.router = createRouter(c.router, {
      dModel,
      numExperts: c.numExperts,
      seed,
      name: `${name}.router`,
      trainable,
    });
    this.experts = new BatchedExperts(
      c.numExperts / W,
      dModel,
      c.dFF,
      c.activation,
      c.expertBias,
      seed + 100,
      `${name}.experts`,
      trainable,
      {
        firstExpert: this.exchange.firstExpert,
        ...(init.slicing ? { slicing: init.slicing } : {}),
        ...(init.paging ? { paging: init.paging } : {}),
      },
    );
    this.residual = c.residual
      ? {
          w1: tidy(() =>
            variable(
              randomNormal([dModel, c.dFF], 0, 1 / Math.sqrt(dModel), "float32", seed + 7),
              trainable,
              `${name}.residual.w1`,
            ),
          ),
          b1: tidy(() => variable(zeros([c.dFF]), trainable, `${name}.residual.b1`)),
          w2: tidy(() =>
            variable(
              randomNormal([c.dFF, dModel], 0, 1 / Math.sqrt(c.dFF), "float32", seed + 8),
              trainable,
              `${name}.residual.w2`,
            ),
          ),
          b2: tidy(() => variable(zeros([dModel]), trainable, `${name}.residual.b2`)),
          coef: tidy(() => variable(zeros([dModel, 2]), trainable, `${name}.residual.coef`)),
        }
      : null;
  }

  /**
   * x: <float32>[T, M] (flattened tokens), ctx: routing context (task ids,
   * padding mask, training flag, RNG). Returns y [T, M] and the routing; the
   * caller adds routing.auxLoss / zLoss (scaled) to its loss and disposes
   * what it keeps outside a tidy.
   */
  forward(x: Tensor2D, ctx: RouteContext): MoeOutput {
    const M = this.init.dModel;
    if (x.rank !== 2 || x.shape[1] !== M) {
      throw new ModelError("SHAPE_MISMATCH", `${this.init.name}: x must be [tokens, ${M}], got [${x.shape}]`);
    }
    const T = x.shape[0];
    // 1. route
    const routing = this.router.route(x, ctx);
    const E = this.config.numExperts;
    const C = routing.capacity;
    const y = tidy(() => {
      let moe: Tensor2D;
      if (this.exchange.worldSize === 1) {
        // All experts local: pack the kept pairs' rows expert by expert with no
        // capacity padding, and run each expert on its own rows only (cost
        // follows the routed tokens: task routing fills few of many experts).
        const packed = packRows(routing.pairs, E, C);
        const buf = moeDispatch(x, packed.pairs, packed.rows);
        const out = this.experts.applyGrouped(buf, packed.segments);
        moe = moeCombine(out, packed.pairs, T, routing.combineWeight);
      } else {
        // 2. dispatch
        const buf = moeDispatch(x, routing.pairs, E * C);
        // 3. all-to-all to the experts' ranks (filled slots per expert travel along)
        const sent = this.exchange.toExperts(
          reshape(buf, [E, C, M]) as Tensor3D,
          filledSlots(routing.pairs, E, C),
        );
        // 4. experts, on the filled rows of each (expert, source rank) block
        const out = this.experts.applyBlocks(sent.buf, sent.counts);
        // 5. all-to-all back
        const back = this.exchange.fromExperts(out, sent);
        // 6. combine
        moe = moeCombine(reshape(back, [E * C, M]) as Tensor2D, routing.pairs, T, routing.combineWeight);
      }
      if (!this.residual) return moe;
      const r = this.residual;
      const dense = add(
        matMul(
          this.hiddenAct(add(matMul(x, r.w1 as Variable), r.b1 as Variable) as Tensor2D),
          r.w2 as Variable,
        ),
        r.b2 as Variable,
      );
      const coef = softmax(matMul(x, r.coef as Variable)) as Tensor2D;
      return add(mul(moe, slice(coef, [0, 0], [T, 1])), mul(dense, slice(coef, [0, 1], [T, 1]))) as Tensor2D;
    });
    return { y, routing };
  }

  private hiddenAct(h: Tensor2D): Tensor2D {
    return (this.config.activation === "gelu" ? geluOp(h) : relu(h)) as Tensor2D;
  }

  /** Every variable by its short name within the layer. */
  variables(): Record<string, Variable> {
    const out: Record<string, Variable> = {};
    for (const [k, v] of Object.entries(this.router.variables)) out[`router.${k}`] = v;
    for (const [k, v] of Object.entries(this.experts.variables())) out[`experts.${k}`] = v;
    if (this.residual) for (const [k, v] of Object.entries(this.residual)) out[`residual.${k}`] = v;
    return out;
  }

  parameterGroups(): ParameterGroups {
    return {
      expert: Object.values(this.experts.variables()),
      dense: [
        ...Object.values(this.router.variables),
        ...(this.residual ? Object.values(this.residual) : []),
      ],
    };
  }

  dispose(): void {
    this.router.dispose();
    this.experts.dispose();
    if (this.residual) for (const v of Object.values(this.residual)) v.dispose();
  }
}
