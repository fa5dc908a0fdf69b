// PolyMoE's own kernel names and their input/attribute types, in tfjs's
// kernel-registry style (tfjs-core/src/kernel_names.ts). Each kernel has a
// native implementation on the polymoe-native backend; the op that calls it
// (../ops) runs an equivalent composite of tfjs ops on every other backend.
import type { NamedTensorInfoMap } from "@tensorflow/tfjs-core";

/** y = x * Phi(x), exact (erf) GELU. */
export const Gelu = "polymoe.Gelu";
export type GeluInputs = Pick<NamedTensorInfoMap, "x">;

/** dx = dy * GELU'(x). */
export const GeluGrad = "polymoe.GeluGrad";
export type GeluGradInputs = Pick<NamedTensorInfoMap, "dy" | "x">;

/** y = (x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis. */
export const LayerNorm = "polymoe.LayerNorm";
export type LayerNormInputs = Pick<NamedTensorInfoMap, "x" | "gamma" | "beta">;
export interface LayerNormAttrs {
  epsilon: number;
}

/** [dx, dgamma, dbeta] of LayerNorm; recomputes the row statistics from x. */
export const LayerNormGrad = "polymoe.LayerNormGrad";
export type LayerNormGradInputs = Pick<NamedTensorInfoMap, "dy" | "x" | "gamma">;
export type LayerNormGradAttrs = LayerNormAttrs;

/**
 * Index-based MoE dispatch: buf[dest[p]] = weight[p] * x[token[p]] for every
 * kept pair p (dest >= 0); rows no pair writes are zero.
 * x [T, M]; token, dest int32 [P]; weight float32 [P] -> buf [rows, M].
 */
export const MoeDispatch = "polymoe.MoeDispatch";
export type MoeDispatchInputs = Pick<NamedTensorInfoMap, "x" | "token" | "dest" | "weight">;
export interface MoeDispatchAttrs {
  rows: number;
}

/**
 * Index-based MoE combine, the adjoint of dispatch:
 * y[t] = sum of weight[p] * buf[dest[p]] over kept pairs with token[p] = t.
 * buf [rows, M]; token, dest int32 [P]; weight float32 [P] -> y [numTokens, M].
 */
export const MoeCombine = "polymoe.MoeCombine";
export type MoeCombineInputs = Pick<NamedTensorInfoMap, "buf" | "token" | "dest" | "weight">;
export interface MoeCombineAttrs {
  numTokens: number;
}

/** dw[p] = <a[token[p]], b[dest[p]]> (0 for dropped pairs): the weight gradient of both. */
export const MoePairDot = "polymoe.MoePairDot";
export type MoePairDotInputs = Pick<NamedTensorInfoMap, "a" | "b" | "token" | "dest">;

/**
 * Grouped expert matmul over row segments (MegaBlocks-style): for each segment
 * (start, rows, expert), y[r] = x[r] op(w[expert]) + bias[expert] for rows r in
 * [start, start + rows); rows no segment covers are zero.
 * x [R, K]; w [E, K, N] ([E, N, K] when transposeW); bias [E, N] (optional);
 * segments int32 [S * 3] -> y [R, N].
 */
export const GroupedMatMul = "polymoe.GroupedMatMul";
export type GroupedMatMulInputs = Pick<NamedTensorInfoMap, "x" | "w" | "bias" | "segments">;
export interface GroupedMatMulAttrs {
  transposeW: boolean;
}

/**
 * Weight (and bias) gradient of GroupedMatMul: dw[e] = sum over the segments
 * of expert e of a_s^T g_s, db[e] = the sum of g's rows of expert e.
 * a [R, Ka], g [R, Ng], segments -> [dw [E, Ka, Ng], db [E, Ng]].
 */
export const GroupedMatMulGradW = "polymoe.GroupedMatMulGradW";
export type GroupedMatMulGradWInputs = Pick<NamedTensorInfoMap, "a" | "g" | "segments">;
export interface GroupedMatMulGradWAttrs {
  numExperts: number;
}

/**
 * Inverted dropout with a counter-based mask: y = x / (1 - rate) where kept,
 * 0 elsewhere; whether element i is kept depends only on (seed, i), so the
 * gradient is the same kernel applied to dy with the same seed.
 */
export const Dropout = "polymoe.Dropout";
export type DropoutInputs = Pick<NamedTensorInfoMap, "x">;
export interface DropoutAttrs {
  rate: number;
  /** In [0, 2^32). */
  seed: number;
}

/**
 * Attention of a few queries over cached keys/values (incremental decoding;
 * forward only): q [B, T, H*D], k and v [B, S, H*D] of which the first
 * `length` rows are valid, mask (optional) additive with B * length elements
 * -> [B, T, H*D]. Per head h: softmax(scale * q_h k_h^T + mask) v_h; causal:
 * query t (position length - T + t) sees keys up to its own position.
 */
export const CachedAttention = "polymoe.CachedAttention";
export type CachedAttentionInputs = Pick<NamedTensorInfoMap, "q" | "k" | "v" | "mask">;
export interface CachedAttentionAttrs {
  heads: number;
  length: number;
  scale: number;
  causal: boolean;
}

/**
 * Writes x [B, T, M] into rows [pos, pos + T) of cache [B, S, M] IN PLACE and
 * returns the cache (the same storage): a preallocated key/value cache grows
 * without copying. Only for caches the caller owns alone (decoding state);
 * tensors sharing the storage see the write.
 */
export const CacheWrite = "polymoe.CacheWrite";
export type CacheWriteInputs = Pick<NamedTensorInfoMap, "cache" | "x">;
export interface CacheWriteAttrs {
  pos: number;
}

/**
 * The k best entries of each row of log_softmax(logits) (forward only):
 * logits [R, V] -> values <float32>[R, k] (log-probabilities, best first, ties
 * to the lower column) and indices <int32>[R, k]. Column `exclude` (-1: none)
 * is never chosen but counts in the normaliser. The next-token step of greedy
 * and beam search without materialising [R, V] log-probabilities.
 */
export const LogSoftmaxTopK = "polymoe.LogSoftmaxTopK";
export type LogSoftmaxTopKInputs = Pick<NamedTensorInfoMap, "logits">;
export interface LogSoftmaxTopKAttrs {
  k: number;
  exclude: number;
}
