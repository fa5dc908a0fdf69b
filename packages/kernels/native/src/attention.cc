// Attention of a few queries over cached keys/values, for incremental decoding.
#include <algorithm>

#include "common.h"

namespace polymoe {

void cached_attention(const float* q, const float* k, const float* v, const float* mask, float* out, i64 B,
                      i64 T, i64 S, i64 L, i64 H, i64 D, float scale, bool causal) {
  const i64 M = H * D;
  const i64 rows = B * T * H;
  if (rows == 0) return;
  const int threads = threads_for(rows * L * D * 2);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    std::vector<float> p(static_cast<size_t>(L > 0 ? L : 1));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (i64 r = 0; r < rows; ++r) {
      const i64 h = r % H;
      const i64 t = (r / H) % T;
      const i64 b = r / (H * T);
      const float* qr = q + (b * T + t) * M + h * D;
      float* o = out + (b * T + t) * M + h * D;
      // Query t sits at position L - T + t: causally it sees keys 0 .. L - T + t.
      const i64 lim = causal ? std::min(L, L - T + t + 1) : L;
      if (lim <= 0) {
        std::fill(o, o + D, 0.0f);
        continue;
      }
      const float* kb = k + b * S * M + h * D;
      const float* vb = v + b * S * M + h * D;
      float m = -std::numeric_limits<float>::infinity();
      for (i64 s = 0; s < lim; ++s) {
        const float* ks = kb + s * M;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (i64 d = 0; d < D; ++d) dot += qr[d] * ks[d];
        float x = dot * scale;
        if (mask) x += mask[b * L + s];
        p[s] = x;
        m = std::max(m, x);
      }
      double sum = 0.0;
      for (i64 s = 0; s < lim; ++s) {
        const float e = vexp(p[s] - m);
        p[s] = e;
        sum += e;
      }
      const float inv = static_cast<float>(1.0 / sum);
      std::fill(o, o + D, 0.0f);
      for (i64 s = 0; s < lim; ++s) {
        const float w = p[s] * inv;
        const float* vs = vb + s * M;
#pragma omp simd
        for (i64 d = 0; d < D; ++d) o[d] += w * vs[d];
      }
    }
  }
  (void)threads;
}

}  // namespace polymoe
