#pragma once

#include "common.h"

namespace polymoe {

enum class RedOp : int { Sum = 0, Mean = 1, Max = 2, Min = 3, Prod = 4 };

/**
 * Reduce x (shape) over `axes` (distinct, in range; the caller validated them)
 * into out, laid out as the shape with those axes removed.
 */
void reduce(RedOp op, const float* x, const std::vector<i64>& shape, const std::vector<i64>& axes,
            float* out);

/** out = transpose(x, perm); out has shape[perm[i]] at dim i. */
void transpose(const float* x, const std::vector<i64>& shape, const std::vector<i64>& perm, float* out);

/**
 * Attention of T queries over the first L of S cached keys/values, per head:
 * q [B, T, H*D], k and v [B, S, H*D] -> out [B, T, H*D];
 * out = softmax(scale * q k^T + mask) v, mask (optional) additive [B, L];
 * causal: query t (at position L - T + t) sees keys 0 .. L - T + t only.
 */
void cached_attention(const float* q, const float* k, const float* v, const float* mask, float* out, i64 B,
                      i64 T, i64 S, i64 L, i64 H, i64 D, float scale, bool causal);

/** Row-wise softmax (log_softmax when log=true) over the last axis of [rows, cols]. */
void softmax(const float* x, float* out, i64 rows, i64 cols, bool log);

/**
 * The k best entries of each row of log_softmax(x) without writing the
 * [rows, cols] result: values [rows, k] (log-probabilities, best first) and
 * their columns [rows, k]; ties keep the lower column first. Column `exclude`
 * (-1: none) is never chosen but still counts in the normaliser. Rows with
 * fewer than k candidates end with -inf and column -1.
 */
void log_softmax_topk(const float* x, i64 rows, i64 cols, i64 k, i64 exclude, float* values,
                      std::int32_t* indices);

/**
 * LayerNorm over the last axis of x[rows, cols]: y = (x - mean) / sqrt(var + eps) * gamma + beta.
 * gamma/beta may be null (no affine transform).
 */
void layer_norm(const float* x, const float* gamma, const float* beta, float* y, i64 rows, i64 cols,
                float eps);

/**
 * LayerNorm backward. Recomputes mean/rstd from x. dgamma/dbeta may be null
 * when gamma is absent; they are overwritten (not accumulated).
 */
void layer_norm_grad(const float* dy, const float* x, const float* gamma, float* dx, float* dgamma,
                     float* dbeta, i64 rows, i64 cols, float eps);

/**
 * Gather along an axis: params viewed [outer, axis_dim, inner]; out [outer, n_idx, inner].
 * Throws KernelError naming the first index outside [0, axis_dim).
 */
void gather(const float* params, i64 outer, i64 axis_dim, i64 inner, const std::int32_t* idx, i64 n_idx,
            float* out);

/**
 * out[s, :] = sum of data[n, :] over n with ids[n] == s; data [n, inner],
 * out [num_segments, inner]. Ids outside [0, num_segments) are dropped (TF semantics).
 */
void unsorted_segment_sum(const float* data, const std::int32_t* ids, i64 n, i64 inner, i64 num_segments,
                          float* out);

/**
 * ScatterNd into zeros: indices [n, index_dims.size()] address slices of
 * `slice_size` elements of an output whose leading dims are index_dims;
 * duplicates add. Throws KernelError naming the first out-of-range index.
 */
void scatter_nd(const std::int32_t* indices, const float* updates, i64 n, i64 slice_size,
                const std::vector<i64>& index_dims, float* out);

}  // namespace polymoe

namespace polymoe {

/** out = x[begin : begin + size] (per dim); out is contiguous with shape `size`. */
void slice(const float* x, const std::vector<i64>& shape, const std::vector<i64>& begin,
           const std::vector<i64>& size, float* out);

/** out = x padded with `value`: before[d] elements ahead and after[d] behind along dim d. */
void pad(const float* x, const std::vector<i64>& shape, const std::vector<i64>& before,
         const std::vector<i64>& after, float value, float* out);

}  // namespace polymoe
