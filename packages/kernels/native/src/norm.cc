#include <algorithm>
#include <vector>

#include "shape_ops.h"

namespace polymoe {

namespace {

/** Largest element of a row (-inf for an empty row; NaN-blind, as std::max). */
inline float row_max(const float* xr, i64 cols) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (i64 c = 0; c < cols; ++c) m = std::max(m, xr[c]);
  return m;
}

}  // namespace

void softmax(const float* x, float* out, i64 rows, i64 cols, bool log) {
  if (rows == 0 || cols == 0) return;
  const int threads = threads_for(rows * cols * 4);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (i64 r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = out + r * cols;
    const float m = row_max(xr, cols);
    // A NaN anywhere makes exp(x - m) NaN below, so the row becomes NaN as in
    // tfjs. A row of -inf gives m = -inf and NaN likewise.
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (i64 c = 0; c < cols; ++c) {
      const float e = vexp(xr[c] - m);
      yr[c] = e;
      s += e;
    }
    if (log) {
      // (x - m) first: exact for x near m, so no cancellation against m + log s.
      const float lse = static_cast<float>(std::log(s));
#pragma omp simd
      for (i64 c = 0; c < cols; ++c) yr[c] = (xr[c] - m) - lse;
    } else {
      const float inv = static_cast<float>(1.0 / s);
#pragma omp simd
      for (i64 c = 0; c < cols; ++c) yr[c] *= inv;
    }
  }
  (void)threads;
}

void log_softmax_topk(const float* x, i64 rows, i64 cols, i64 k, i64 exclude, float* values,
                      std::int32_t* indices) {
  if (rows == 0 || k == 0) return;
  const float ninf = -std::numeric_limits<float>::infinity();
  const int threads = threads_for(rows * cols * 2);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (i64 r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* vr = values + r * k;
    std::int32_t* ir = indices + r * k;
    for (i64 j = 0; j < k; ++j) {
      vr[j] = ninf;
      ir[j] = -1;
    }
    // The maximum of every block of 16 columns, and from them the row's: the
    // selection below skips whole blocks on them.
    constexpr i64 kBlock = 16;
    thread_local std::vector<float> block_max;
    block_max.resize(static_cast<size_t>((cols + kBlock - 1) / kBlock));
    float m = ninf;
    for (i64 c0 = 0, b = 0; c0 < cols; c0 += kBlock, ++b) {
      const float bm = row_max(xr + c0, std::min(cols, c0 + kBlock) - c0);
      block_max[static_cast<size_t>(b)] = bm;
      m = std::max(m, bm);
    }
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (i64 c = 0; c < cols; ++c) s += vexp(xr[c] - m);
    const float lse = static_cast<float>(std::log(s));
    // Insertion into the sorted list, a block at a time: once the list is
    // full, a block whose maximum does not beat its last entry is skipped
    // whole, which is almost every block.
    i64 n = 0;
    for (i64 c0 = 0, b = 0; c0 < cols; c0 += kBlock, ++b) {
      const i64 c1 = std::min(cols, c0 + kBlock);
      if (n == k && !(block_max[static_cast<size_t>(b)] > vr[k - 1])) continue;
      for (i64 c = c0; c < c1; ++c) {
        const float v = xr[c];
        if (n == k && !(v > vr[k - 1])) continue;
        if (c == exclude || v != v) continue;
        i64 i = n < k ? n++ : k - 1;
        while (i > 0 && v > vr[i - 1]) {
          vr[i] = vr[i - 1];
          ir[i] = ir[i - 1];
          --i;
        }
        vr[i] = v;
        ir[i] = static_cast<std::int32_t>(c);
      }
    }
    // Same arithmetic as log_softmax: (x - m) - log sum exp(x - m).
    for (i64 j = 0; j < n; ++j) vr[j] = (vr[j] - m) - lse;
  }
  (void)threads;
}

namespace {

/** Mean and 1/sqrt(var + eps) of one row; two passes, double accumulation. */
inline void row_moments(const float* xr, i64 cols, float eps, float& mean, float& rstd) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (i64 c = 0; c < cols; ++c) s += xr[c];
  const double mu = s / static_cast<double>(cols);
  double v = 0.0;
#pragma omp simd reduction(+ : v)
  for (i64 c = 0; c < cols; ++c) {
    const double d = xr[c] - mu;
    v += d * d;
  }
  v /= static_cast<double>(cols);
  mean = static_cast<float>(mu);
  rstd = static_cast<float>(1.0 / std::sqrt(v + static_cast<double>(eps)));
}

}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, i64 rows, i64 cols,
                float eps) {
  if (rows == 0 || cols == 0) return;
  const int threads = threads_for(rows * cols * 3);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (i64 r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float mean, rstd;
    row_moments(xr, cols, eps, mean, rstd);
    if (gamma && beta) {
#pragma omp simd
      for (i64 c = 0; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
    } else if (gamma) {
#pragma omp simd
      for (i64 c = 0; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd * gamma[c];
    } else {
#pragma omp simd
      for (i64 c = 0; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd;
    }
  }
  (void)threads;
}

void layer_norm_grad(const float* dy, const float* x, const float* gamma, float* dx, float* dgamma,
                     float* dbeta, i64 rows, i64 cols, float eps) {
  if (cols == 0) return;
  if (rows == 0) {
    if (dgamma) std::fill(dgamma, dgamma + cols, 0.0f);
    if (dbeta) std::fill(dbeta, dbeta + cols, 0.0f);
    return;
  }
  const int threads = threads_for(rows * cols * 6);
  const int nt = std::max(1, threads);
  // Per-thread partial sums for dgamma/dbeta, combined at the end in a fixed
  // order (deterministic for a given thread count).
  std::vector<double> part(static_cast<size_t>(nt) * 2 * static_cast<size_t>(cols), 0.0);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
#else
    const int t = 0, T = 1;
#endif
    double* pg = part.data() + static_cast<size_t>(t) * 2 * static_cast<size_t>(cols);
    double* pb = pg + cols;
    std::vector<float> xhat(static_cast<size_t>(cols));
    const i64 r0 = rows * t / T, r1 = rows * (t + 1) / T;
    for (i64 r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      const float* gr = dy + r * cols;
      float* dxr = dx + r * cols;
      float mean, rstd;
      row_moments(xr, cols, eps, mean, rstd);
      double s1 = 0.0, s2 = 0.0;  // sums of g and g * xhat, g = dy * gamma
#pragma omp simd reduction(+ : s1, s2)
      for (i64 c = 0; c < cols; ++c) {
        const float xh = (xr[c] - mean) * rstd;
        xhat[static_cast<size_t>(c)] = xh;
        const float g = gamma ? gr[c] * gamma[c] : gr[c];
        s1 += g;
        s2 += static_cast<double>(g) * xh;
        pg[c] += static_cast<double>(gr[c]) * xh;
        pb[c] += gr[c];
      }
      const float m1 = static_cast<float>(s1 / static_cast<double>(cols));
      const float m2 = static_cast<float>(s2 / static_cast<double>(cols));
#pragma omp simd
      for (i64 c = 0; c < cols; ++c) {
        const float g = gamma ? gr[c] * gamma[c] : gr[c];
        dxr[c] = rstd * (g - m1 - xhat[static_cast<size_t>(c)] * m2);
      }
    }
  }
  for (i64 c = 0; c < cols; ++c) {
    double g = 0.0, b = 0.0;
    for (int t = 0; t < nt; ++t) {
      g += part[static_cast<size_t>(t) * 2 * static_cast<size_t>(cols) + static_cast<size_t>(c)];
      b += part[static_cast<size_t>(t) * 2 * static_cast<size_t>(cols) + static_cast<size_t>(cols + c)];
    }
    if (dgamma) dgamma[c] = static_cast<float>(g);
    if (dbeta) dbeta[c] = static_cast<float>(b);
  }
}

}  // namespace polymoe
