import {
  CachedAttention,
  type CachedAttentionAttrs,
  CacheWrite,
  type CacheWriteAttrs,
} from "../kernel_names.js";
import { input, type NativeKernel } from "./util.js";

export const cachedAttentionKernel: NativeKernel = {
  kernelName: CachedAttention,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { heads, length, scale, causal } = attrs as unknown as CachedAttentionAttrs;
    const q = input(inputs, "q", CachedAttention);
    const k = input(inputs, "k", CachedAttention);
    const v = input(inputs, "v", CachedAttention);
    const qv = backend.f32(q);
    const kv = backend.f32(k);
    const vv = backend.f32(v);
    if (!qv || !kv || !vv) throw new Error(`${CachedAttention}: q, k and v must be float32`);
    const mask = inputs.mask ? backend.f32(inputs.mask) : null;
    if (inputs.mask && !mask) throw new Error(`${CachedAttention}: mask must be float32`);
    const [B, T, M] = q.shape as [number, number, number];
    const S = k.shape[1] as number;
    const out = backend.allocF32(B * T * M);
    backend.native.cachedAttention(qv, kv, vv, mask, out, B, T, S, length, heads, M / heads, scale, causal);
    return backend.output([B, T, M], out);
  },
};

export const cacheWriteKernel: NativeKernel = {
  kernelName: CacheWrite,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { pos } = attrs as unknown as CacheWriteAttrs;
    const cache = input(inputs, "cache", CacheWrite);
    const x = input(inputs, "x", CacheWrite);
    const cv = backend.f32(cache);
    const xv = backend.f32(x);
    if (!cv || !xv) throw new Error(`${CacheWrite}: cache and x must be float32`);
    const [B, S, M] = cache.shape as [number, number, number];
    const T = x.shape[1] as number;
    for (let b = 0; b < B; b++) cv.set(xv.subarray(b * T * M, (b + 1) * T * M), (b * S + pos) * M);
    // The output is the cache itself (as tfjs's Reshape shares its input's storage).
    backend.incRef(cache.dataId);
    return { dataId: cache.dataId, shape: cache.shape.slice(), dtype: "float32" };
  },
};
