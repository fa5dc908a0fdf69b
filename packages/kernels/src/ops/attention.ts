import {
  add,
  concat,
  matMul,
  mul,
  reshape,
  slice,
  softmax,
  type Tensor,
  type Tensor3D,
  tensor2d,
  tidy,
  transpose,
  zeros,
} from "@tensorflow/tfjs-core";

import { KernelError } from "../errors.js";
import { CachedAttention, CacheWrite } from "../kernel_names.js";
import { assertFloat32, backendHasKernel, runKernel } from "./util.js";

export interface CachedAttentionOptions {
  heads: number;
  /** Valid rows of k and v (the rest of a preallocated cache is ignored). */
  length: number;
  /** Additive, B * length elements (e.g. [B, 1, 1, length]: 0 keep, -1e9 drop). */
  mask?: Tensor | null;
  /** Query t (at position length - T + t) sees keys up to its own position only. */
  causal?: boolean;
  /** Default 1 / sqrt(head width). */
  scale?: number;
}

/**
 * Multi-head attention of T queries over cached keys and values, the inner
 * step of incremental decoding (forward only: no gradient).
 * q <float32>[B, T, H*D]; k, v <float32>[B, S, H*D] with the first `length`
 * rows valid -> [B, T, H*D]. Heads stay interleaved in the last axis, as the
 * projections produce them: no split or merge transposes. On polymoe-native
 * one fused pass per (sentence, query, head); elsewhere the composite of
 * tfjs ops (split heads, two batched matmuls, softmax).
 */
export function cachedAttention(
  q: Tensor3D,
  k: Tensor3D,
  v: Tensor3D,
  opts: CachedAttentionOptions,
): Tensor3D {
  for (const [t, n] of [
    [q, "q"],
    [k, "k"],
    [v, "v"],
  ] as const) {
    assertFloat32(t, n, "cachedAttention");
    if (t.rank !== 3) {
      throw new KernelError(
        "SHAPE_MISMATCH",
        `cachedAttention: ${n} must be [B, rows, H*D], got [${t.shape}]`,
      );
    }
  }
  const [B, T, M] = q.shape;
  const S = k.shape[1];
  const { heads: H, length: L } = opts;
  const causal = opts.causal ?? false;
  if (k.shape[0] !== B || v.shape[0] !== B || k.shape[2] !== M || v.shape[2] !== M || v.shape[1] !== S) {
    throw new KernelError(
      "SHAPE_MISMATCH",
      `cachedAttention: q [${q.shape}], k [${k.shape}] and v [${v.shape}] must be [B, T, M], [B, S, M], [B, S, M]`,
    );
  }
  if (!Number.isInteger(H) || H < 1 || M % H !== 0) {
    throw new KernelError("INVALID_ARGUMENT", `cachedAttention: width ${M} is not divisible by heads ${H}`);
  }
  if (!Number.isInteger(L) || L < 1 || L > S) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `cachedAttention: length must be in [1, ${S}] (cache rows), got ${L}`,
    );
  }
  if (causal && L < T) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `cachedAttention: causal with ${T} queries needs length >= ${T}, got ${L}`,
    );
  }
  const mask = opts.mask ?? null;
  if (mask) {
    assertFloat32(mask, "mask", "cachedAttention");
    if (mask.size !== B * L) {
      throw new KernelError(
        "SHAPE_MISMATCH",
        `cachedAttention: mask has ${mask.size} elements, needs B * length = ${B * L}`,
      );
    }
  }
  const scale = opts.scale ?? 1 / Math.sqrt(M / H);
  if (backendHasKernel(CachedAttention)) {
    const inputs: Record<string, Tensor> = { q, k, v };
    if (mask) inputs.mask = mask;
    return runKernel<Tensor3D>(CachedAttention, inputs, { heads: H, length: L, scale, causal });
  }
  const D = M / H;
  return tidy(() => {
    const split = (x: Tensor, n: number) => transpose(reshape(x, [B, n, H, D]), [0, 2, 1, 3]);
    const rows = (x: Tensor3D) => (L < S ? slice(x, [0, 0, 0], [B, L, M]) : x);
    let s = mul(matMul(split(q, T), split(rows(k), L), false, true), scale); // [B, H, T, L]
    if (mask) s = add(s, reshape(mask, [B, 1, 1, L]));
    if (causal) {
      const band = new Float32Array(T * L);
      for (let t = 0; t < T; t++) for (let j = L - T + t + 1; j < L; j++) band[t * L + j] = -1e9;
      s = add(s, tensor2d(band, [T, L]));
    }
    const ctx = matMul(softmax(s), split(rows(v), L)); // [B, H, T, D]
    return reshape(transpose(ctx, [0, 2, 1, 3]), [B, T, M]) as Tensor3D;
  });
}

/**
 * Appends x <float32>[B, T, M] at rows [pos, pos + T) of a key/value cache
 * and returns the cache holding rows [0, pos + T). On polymoe-native the cache
 * is preallocated with `capacity` rows on the first call (cache null) and
 * written in place afterwards — the returned tensor shares the input cache's
 * storage, so a cache must belong to one decoding state only; elsewhere it is
 * `concat([cache, x], 1)` (exactly pos + T rows). Attention reads the first
 * pos + T rows either way (cachedAttention's `length`).
 */
export function kvCacheAppend(cache: Tensor3D | null, x: Tensor3D, pos: number, capacity: number): Tensor3D {
  assertFloat32(x, "x", "kvCacheAppend");
  if (x.rank !== 3)
    throw new KernelError("SHAPE_MISMATCH", `kvCacheAppend: x must be [B, T, M], got [${x.shape}]`);
  const [B, T, M] = x.shape;
  if (pos + T > capacity) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `kvCacheAppend: rows ${pos}..${pos + T} exceed the cache capacity ${capacity} (raise the decoder's capacity)`,
    );
  }
  if (cache && (cache.rank !== 3 || cache.shape[0] !== B || cache.shape[2] !== M)) {
    throw new KernelError(
      "SHAPE_MISMATCH",
      `kvCacheAppend: cache [${cache.shape}] does not match x [${x.shape}]`,
    );
  }
  if (backendHasKernel(CacheWrite)) {
    if (!cache && pos !== 0) {
      throw new KernelError("INVALID_ARGUMENT", `kvCacheAppend: no cache to append at row ${pos}`);
    }
    if (cache && cache.shape[1] !== capacity) {
      throw new KernelError(
        "SHAPE_MISMATCH",
        `kvCacheAppend: cache has ${cache.shape[1]} rows, capacity is ${capacity}`,
      );
    }
    return tidy(() =>
      runKernel<Tensor3D>(CacheWrite, { cache: cache ?? zeros([B, capacity, M]), x }, { pos }),
    );
  }
  if (!cache) {
    if (pos !== 0)
      throw new KernelError("INVALID_ARGUMENT", `kvCacheAppend: no cache to append at row ${pos}`);
    return x.clone();
  }
  if (cache.shape[1] !== pos) {
    throw new KernelError(
      "SHAPE_MISMATCH",
      `kvCacheAppend: cache has ${cache.shape[1]} rows, appending at ${pos}`,
    );
  }
  return concat([cache, x], 1);
}
