// Measured floating-point peak: independent FMA chains held in registers on
// every thread, no memory traffic. The reference that sgemm efficiency is
// reported against (benchmarks), instead of a nominal clock * width figure.
#include <immintrin.h>

#include "common.h"

namespace polymoe {

double fma_peak_gflops(i64 iters) {
  double seconds = 0.0;
  float sink = 0.0f;
  const int threads = num_threads();
#ifdef _OPENMP
  const double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
#endif
  {
#if defined(__AVX512F__)
    constexpr int W = 16;
    __m512 acc[12];
    for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_ps(0.001f * static_cast<float>(k));
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (i64 i = 0; i < iters; ++i)
      for (int k = 0; k < 12; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
    for (int k = 0; k < 12; ++k) sink += _mm512_reduce_add_ps(acc[k]);
#elif defined(__AVX2__) && defined(__FMA__)
    constexpr int W = 8;
    __m256 acc[12];
    for (int k = 0; k < 12; ++k) acc[k] = _mm256_set1_ps(0.001f * static_cast<float>(k));
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (i64 i = 0; i < iters; ++i)
      for (int k = 0; k < 12; ++k) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
    float tmp[8];
    for (int k = 0; k < 12; ++k) {
      _mm256_storeu_ps(tmp, acc[k]);
      for (float v : tmp) sink += v;
    }
#else
    constexpr int W = 1;
    float acc[12];
    for (int k = 0; k < 12; ++k) acc[k] = 0.001f * static_cast<float>(k);
    for (i64 i = 0; i < iters; ++i)
      for (int k = 0; k < 12; ++k) acc[k] = std::fma(acc[k], 0.999999f, 1e-7f);
    for (float v : acc) sink += v;
#endif
    (void)W;
  }
#ifdef _OPENMP
  seconds = omp_get_wtime() - t0;
#endif
#if defined(__AVX512F__)
  constexpr double width = 16;
#elif defined(__AVX2__) && defined(__FMA__)
  constexpr double width = 8;
#else
  constexpr double width = 1;
#endif
  if (sink == 12345.678f) seconds += 1e-12;  // keep the chains observable
  const double flops = 2.0 * width * 12.0 * static_cast<double>(iters) * threads;
  return seconds > 0 ? flops / seconds / 1e9 : 0.0;
}

}  // namespace polymoe
