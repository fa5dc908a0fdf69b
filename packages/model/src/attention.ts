// Multi-head attention. Axis legend: B batch, T query length, S key length,
// H heads, D head width (dModel / H), M model width.
import { cachedAttention, kvCacheAppend } from "@polymoe/kernels";
import type { Rng } from "@polymoe/routers";
import {
  add,
  matMul,
  mul,
  reshape,
  slice,
  softmax,
  type Tensor,
  type Tensor2D,
  type Tensor3D,
  type Tensor4D,
  transpose,
} from "@tensorflow/tfjs-core";

import { applyLinear, drop, type Linear, linear, type ParamStore } from "./layers.js";

/** Cached keys and values of one attention layer: <float32>[B, H, S, D] each. */
export interface KVCache {
  k: Tensor4D;
  v: Tensor4D;
}

/**
 * Keys and values in the decoding layout: <float32>[B, rows, M], heads
 * interleaved in the last axis as the projections produce them. A
 * self-attention cache may hold more rows than are filled (preallocated on the
 * native backend); the decoder state says how many are valid.
 */
export interface RowKV {
  k: Tensor3D;
  v: Tensor3D;
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

  /** Keys and values of `memory` [B*S, M] in the decoding layout (cross-attention, once per source). */
  projectRows(memory: Tensor2D, B: number, S: number): RowKV {
    const M = this.dModel;
    const kv = this.cross ? applyLinear(this.kv as Linear, memory) : applyLinear(this.qkv as Linear, memory);
    const off = this.cross ? 0 : M;
    return {
      k: reshape(slice(kv, [0, off], [B * S, M]), [B, S, M]) as Tensor3D,
      v: reshape(slice(kv, [0, off + M], [B * S, M]), [B, S, M]) as Tensor3D,
    };
  }

  /**
   * Incremental decoding (eval mode), x: <float32>[B*T, M] for the T new
   * positions starting at `pos`. Self-attention appends their keys/values to
   * `cache` (null at the first step; at most `capacity` rows) and attends
   * causally over rows [0, pos + T); cross-attention attends over `kv` with
   * the additive source mask. Returns the output [B*T, M] and the cache.
   */
  step(
    x: Tensor2D,
    B: number,
    T: number,
    opts: { cache: RowKV | null; pos: number; capacity: number } | { kv: RowKV; mask: Tensor },
  ): { y: Tensor2D; kv: RowKV } {
    const M = this.dModel;
    const rows = (t: Tensor) => reshape(t, [B, T, M]) as Tensor3D;
    let q: Tensor3D;
    let kv: RowKV;
    let length: number;
    let mask: Tensor | null = null;
    if ("kv" in opts) {
      if (!this.cross) throw new Error("self-attention steps take a cache, not memory keys/values");
      q = rows(applyLinear(this.q as Linear, x));
      kv = opts.kv;
      length = kv.k.shape[1];
      mask = opts.mask;
    } else {
      if (this.cross) throw new Error("cross-attention steps need the memory's keys and values");
      const qkv = applyLinear(this.qkv as Linear, x);
      q = rows(slice(qkv, [0, 0], [B * T, M]));
      const k = rows(slice(qkv, [0, M], [B * T, M]));
      const v = rows(slice(qkv, [0, 2 * M], [B * T, M]));
      kv = {
        k: kvCacheAppend(opts.cache?.k ?? null, k, opts.pos, opts.capacity),
        v: kvCacheAppend(opts.cache?.v ?? null, v, opts.pos, opts.capacity),
      };
      length = opts.pos + T;
    }
    const ctx = cachedAttention(q, kv.k, kv.v, { heads: this.heads, length, mask, causal: !this.cross });
    return { y: applyLinear(this.out, reshape(ctx, [B * T, M]) as Tensor2D), kv };
  }

  /**
   * x: <float32>[B*T, M] queries; keys/values from `kv` (cross), or from x
   * itself (self). Training and teacher-forced scoring; decoding uses step().
   * mask: additive, broadcastable to [B, H, T, S] (0 keep, -1e9 drop).
   * Returns the output [B*T, M] and, for self-attention, the keys/values seen.
   */
  apply(
    x: Tensor2D,
    B: number,
    T: number,
    mask: Tensor | null,
    opts: { training: boolean; rng: Rng; dropout: number; kv?: KVCache },
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
      kv = { k, v };
    }
    let scores = mul(matMul(q, kv.k, false, true), 1 / Math.sqrt(this.headDim)); // [B, H, T, S]
    if (mask) scores = add(scores, mask);
    const p = drop(softmax(scores), opts.dropout, opts.training, opts.rng);
    const ctx = transpose(matMul(p, kv.v), [0, 2, 1, 3]); // [B, T, H, D]
    const y = applyLinear(this.out, reshape(ctx, [B * T, M]) as Tensor2D);
    return { y, kv };
  }
}
