// Fused optimizer kernels: one pass over parameter, gradient and moments,
// in place, multi-threaded and vectorised.
#include <cstring>

#include "common.h"

namespace polymoe {

/**
 * Adam / AdamW, in place. g is scaled by grad_scale first (clipping, loss
 * scaling, accumulation averaging). bias1 = 1 - beta1^t, bias2 = 1 - beta2^t.
 * decoupled: p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)   (AdamW)
 * otherwise: g += wd * p before the moments                   (Adam + L2)
 */
void adam_update(float* p, const float* g, float* m, float* v, i64 n, float lr, float beta1, float beta2, float eps,
                 float weight_decay, float bias1, float bias2, float grad_scale, bool decoupled) {
  const float inv_b1 = 1.0f / bias1;
  const float inv_sqrt_b2 = 1.0f / std::sqrt(bias2);
  const int threads = threads_for(n * 8);
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) num_threads(threads)
#endif
  for (i64 i = 0; i < n; ++i) {
    float gi = g[i] * grad_scale;
    if (!decoupled) gi += weight_decay * p[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float update = (mi * inv_b1) / (std::sqrt(vi) * inv_sqrt_b2 + eps);
    if (decoupled) update += weight_decay * p[i];
    p[i] -= lr * update;
  }
  (void)threads;
}

/** Sum of squares (double accumulation), for global gradient norms. */
double sum_squares(const float* x, i64 n) {
  double s = 0.0;
  const int threads = threads_for(n * 2);
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) reduction(+ : s) num_threads(threads)
#endif
  for (i64 i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  (void)threads;
  return s;
}

/** dst = src, split over threads (each copies one contiguous block). */
void copy_f32(float* dst, const float* src, i64 n) {
  const int threads = threads_for(n);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    const i64 t = omp_get_thread_num(), T = omp_get_num_threads();
    const i64 lo = n * t / T, hi = n * (t + 1) / T;
    if (hi > lo) std::memcpy(dst + lo, src + lo, static_cast<size_t>(hi - lo) * sizeof(float));
  }
#else
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
#endif
  (void)threads;
}

}  // namespace polymoe
