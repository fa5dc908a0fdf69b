#include <algorithm>

#include "shape_ops.h"

namespace polymoe {

void transpose(const float* x, const std::vector<i64>& shape, const std::vector<i64>& perm, float* out) {
  const size_t r = shape.size();
  const i64 n = product(shape);
  if (n == 0) return;
  // Drop size-1 dims and merge output dims that are consecutive in the input.
  std::vector<i64> in_str = strides_of(shape);
  std::vector<i64> dims, strides;  // per output dim: size and input stride
  for (size_t i = 0; i < r; ++i) {
    const size_t p = static_cast<size_t>(perm[i]);
    if (shape[p] == 1) continue;
    if (!dims.empty() && strides.back() == in_str[p] * shape[p]) {
      dims.back() *= shape[p];
      strides.back() = in_str[p];
    } else {
      dims.push_back(shape[p]);
      strides.push_back(in_str[p]);
    }
  }
  if (dims.size() <= 1) {  // the permutation moves nothing: a copy
    std::memcpy(out, x, sizeof(float) * static_cast<size_t>(n));
    return;
  }
  const size_t k = dims.size();
  const i64 P = dims[k - 2], Q = dims[k - 1];
  const i64 sp = strides[k - 2], sq = strides[k - 1];
  const i64 outer = n / (P * Q);
  constexpr i64 T = 32;  // tile edge for the strided case
  const i64 pt = (P + T - 1) / T;
  const int threads = threads_for(n);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) collapse(2)
#endif
  for (i64 o = 0; o < outer; ++o) {
    for (i64 pb = 0; pb < pt; ++pb) {
      i64 base = 0, rem = o;
      for (i64 d = static_cast<i64>(k) - 3; d >= 0; --d) {
        const size_t u = static_cast<size_t>(d);
        base += (rem % dims[u]) * strides[u];
        rem /= dims[u];
      }
      const float* src = x + base;
      float* dst = out + o * P * Q;
      const i64 p0 = pb * T, p1 = std::min(P, p0 + T);
      if (sq == 1) {
        for (i64 p = p0; p < p1; ++p)
          std::memcpy(dst + p * Q, src + p * sp, sizeof(float) * static_cast<size_t>(Q));
      } else {
        for (i64 q0 = 0; q0 < Q; q0 += T) {
          const i64 q1 = std::min(Q, q0 + T);
          for (i64 p = p0; p < p1; ++p)
            for (i64 q = q0; q < q1; ++q) dst[p * Q + q] = src[p * sp + q * sq];
        }
      }
    }
  }
  (void)threads;
}

}  // namespace polymoe
