// Shared helpers for the PolyMoE native kernels.
//
// Conventions: every kernel works on caller-owned, contiguous row-major float32
// buffers (the tfjs cpu backend's Float32Arrays, passed zero-copy). Kernels
// never allocate tensors; JS allocates outputs and passes them in. Threading is
// OpenMP, shared with OpenBLAS (openmp variant) and oneDNN, so one thread count
// (polymoe::num_threads) bounds the whole process.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace polymoe {

using i64 = std::int64_t;

/** Current thread budget for native kernels (set from JS; default = cores). */
int num_threads();
void set_num_threads(int n);

/**
 * Work (in elements) below which a loop runs on one thread. Forking a parallel
 * region costs microseconds on idle cores, but on a loaded host every region
 * waits at its barrier for a preempted thread (measured: 10-27 ms per tiny
 * kernel at load 10 on 2 cores), so only ~0.1 ms+ of work is split.
 */
constexpr i64 kParallelGrain = 1 << 17;

inline int threads_for(i64 work) {
  if (work < kParallelGrain) return 1;
  int t = num_threads();
  i64 useful = work / (kParallelGrain / 2);
  return static_cast<int>(useful < t ? (useful < 1 ? 1 : useful) : t);
}

/** Error raised by a kernel for bad arguments; becomes a JS Error. */
struct KernelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------
// Vectorisable math. Written branch-free (selects only) so GCC vectorises the
// loops that call them; NaN and +-Inf propagate as in IEEE/JS Math.

/** exp(x) with ~1 ulp error over the float range (denormal results included); NaN/Inf exact. */
inline float vexp(float x) {
  const float hi = 88.72283935546875f;   // expf(x) overflows above this
  const float lo = -103.97208404541015f; // expf(x) rounds to 0 below this
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  // n = round(x / ln2), r = x - n ln2 (two-constant Cody-Waite reduction)
  float fn = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r2 + r + 1.0f;
  // Scale by 2^n as 2^n1 * 2^n2 (n in [-150, 128]; each half is a normal float).
  std::int32_t n = static_cast<std::int32_t>(fn);
  std::int32_t n1 = n >> 1;
  std::int32_t n2 = n - n1;
  // __builtin_bit_cast (not memcpy) keeps the loop vectorisable.
  const float s1 = __builtin_bit_cast(float, static_cast<std::int32_t>((n1 + 127) << 23));
  const float s2 = __builtin_bit_cast(float, static_cast<std::int32_t>((n2 + 127) << 23));
  y = (y * s1) * s2;
  y = x > hi ? std::numeric_limits<float>::infinity() : y;
  y = x < lo ? 0.0f : y;
  y = (x != x) ? x : y;
  return y;
}

/**
 * erfc(z) for z >= 0 with fractional error < 1.2e-7 everywhere (Chebyshev
 * fit, Numerical Recipes "erfcc"): no cancellation in the tails, where GELU
 * and its gradient need relative accuracy.
 */
inline float verfc_pos(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * vexp(-z * z + p);
}

/** erf(x): 1 - erfc(|x|) with the sign, and its Maclaurin series near 0 (no cancellation). */
inline float verf(float x) {
  const float ax = std::fabs(x);
  float y = 1.0f - verfc_pos(ax);
  y = x < 0.0f ? -y : y;
  const float x2 = x * x;
  const float taylor =
      x * (1.1283791671f + x2 * (-0.3761263890f + x2 * (0.1128379167f + x2 * (-0.0268661706f + x2 * 0.0052239776f))));
  y = ax < 0.25f ? taylor : y;
  return (x != x) ? x : y;
}

// GELU (exact, erf form): x Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2).
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

/** Phi(x), the standard normal CDF, accurate in relative terms in both tails. */
inline float vnorm_cdf(float x) {
  const float e = 0.5f * verfc_pos(std::fabs(x) * kInvSqrt2);
  const float y = x < 0.0f ? e : 1.0f - e;
  return (x != x) ? x : y;
}

inline float vgelu(float x) {
  const float y = x * vnorm_cdf(x);
  // x * Phi(x) is 0 * 0 for x = -inf; GELU(-inf) = -0 in the limit.
  return x == -std::numeric_limits<float>::infinity() ? -0.0f : y;
}
inline float vgelu_grad(float x) {
  const float pdf = kInvSqrt2Pi * vexp(-0.5f * x * x);
  const float y = vnorm_cdf(x) + x * pdf;
  return std::fabs(x) == std::numeric_limits<float>::infinity() ? (x > 0.0f ? 1.0f : 0.0f) : y;
}

inline float vsigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }

/** Row-major strides of a shape. */
inline std::vector<i64> strides_of(const std::vector<i64>& shape) {
  std::vector<i64> s(shape.size(), 1);
  for (i64 i = static_cast<i64>(shape.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

inline i64 product(const std::vector<i64>& v) {
  i64 p = 1;
  for (i64 x : v) p *= x;
  return p;
}

}  // namespace polymoe
