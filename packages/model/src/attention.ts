// Multi-head attention. Axis legend: B batch, T query length, S key length,
// H heads, D head width (dModel / H), M model width.
import type { Rng } from "@polymoe/routers";
import {
  add,
  concat,
  matMul,
  mul,
  reshape,
  slice,
  softmax,
  type Tensor,
  type Tensor2D,
  type Tensor4D,
  transpose,
} from "@tensorflow/tfjs-core";

import { applyLinear, drop, type Linear, linear, type ParamStore } from "./layers.js";

/** Cached keys and values of one attention layer: <float32>[B, H, S, D] each. */
export interface KVCache {
  k: Tensor4D;
  v: Tensor4D;
}

export class MultiHeadAttention {
  /** Self-attention: one fused [M, 3M] projection; cross-attention: q [M, M] and kv [M, 2M]. */
  private readonly qkv: Linear | null;
  private readonly q: Linear | null;
  private readonly kv: Linear | null;
  private readonly out: Linear;
  readonly headDim: number;

  constructor(
    store: ParamStore,
    key: string,
    readonly dModel: number,
    readonly heads: number,
    readonly cross: boolean,
    seed: number,
  ) {
    if (dModel % heads !== 0) throw new Error(`${key}: dModel ${dModel} is not divisible by heads ${heads}`);
    this.headDim = dModel / heads;
    this.qkv = cross ? null : linear(store, `${key}.qkv`, dModel, 3 * dModel, seed);
    this.q = cross ? linear(store, `${key}.q`, dModel, dModel, seed) : null;
    this.kv = cross ? linear(store, `${key}.kv`, dModel, 2 * dModel, seed + 1) : null;
    this.out = linear(store, `${key}.out`, dModel, dModel, seed + 2);
  }

  /** [B*T, M] -> [B, H, T, D]. */
  private split(x: Tensor2D, B: number, T: number): Tensor4D {
    return transpose(reshape(x, [B, T, this.heads, this.headDim]), [0, 2, 1, 3]) as Tensor4D;
  }

  /** Keys and values of `memory` [B*S, M] (cross-attention: computed once per source). */
  projectKV(memory: Tensor2D, B: number, S: number): KVCache {
    const M = this.dModel;
    const kv = this.cross ? applyLinear(this.kv as Linear, memory) : applyLinear(this.qkv as Linear, memory);
    const off = this.cross ? 0 : M;
    return {
      k: this.split(slice(kv, [0, off], [B * S, M]) as Tensor2D, B, S),
      v: this.split(slice(kv, [0, off + M], [B * S, M]) as Tensor2D, B, S),
    };
  }

  /**
   * x: <float32>[B*T, M] queries; keys/values from `kv` (cross), or from x
   * itself (self; appended to `cache` when decoding incrementally).
   * mask: additive, broadcastable to [B, H, T, S] (0 keep, -1e9 drop).
   * Returns the output [B*T, M] and, for self-attention, the keys/values seen.
   */
  apply(
    x: Tensor2D,
    B: number,
    T: number,
    mask: Tensor | null,
    opts: { training: boolean; rng: Rng; dropout: number; kv?: KVCache; cache?: KVCache },
  ): { y: Tensor2D; kv: KVCache } {
    const M = this.dModel;
    let q: Tensor4D;
    let kv: KVCache;
    if (this.cross) {
      if (!opts.kv) throw new Error("cross-attention needs the memory's keys and values");
      q = this.split(applyLinear(this.q as Linear, x), B, T);
      kv = opts.kv;
    } else {
      const qkv = applyLinear(this.qkv as Linear, x);
      q = this.split(slice(qkv, [0, 0], [B * T, M]) as Tensor2D, B, T);
      const k = this.split(slice(qkv, [0, M], [B * T, M]) as Tensor2D, B, T);
      const v = this.split(slice(qkv, [0, 2 * M], [B * T, M]) as Tensor2D, B, T);
      kv = opts.cache
        ? { k: concat([opts.cache.k, k], 2) as Tensor4D, v: concat([opts.cache.v, v], 2) as Tensor4D }
        : { k, v };
    }
    let scores = mul(matMul(q, kv.k, false, true), 1 / Math.sqrt(this.headDim)); // [B, H, T, S]
    if (mask) scores = add(scores, mask);
    const p = drop(softmax(scores), opts.dropout, opts.training, opts.rng);
    const ctx = transpose(matMul(p, kv.v), [0, 2, 1, 3]); // [B, T, H, D]
    const y = applyLinear(this.out, reshape(ctx, [B * T, M]) as Tensor2D);
    return { y, kv };
  }
}
