#include "moe.h"

#include <algorithm>

namespace polymoe {
namespace {

void check_pairs(i64 T, const std::int32_t* token, const std::int32_t* dest, i64 P, i64 rows) {
  for (i64 p = 0; p < P; ++p) {
    if (token[p] < 0 || token[p] >= T)
      throw KernelError("moe: token[" + std::to_string(p) + "] = " + std::to_string(token[p]) +
                        " is not in [0, " + std::to_string(T) + ")");
    if (dest[p] >= rows)
      throw KernelError("moe: dest[" + std::to_string(p) + "] = " + std::to_string(dest[p]) +
                        " is not below the buffer's " + std::to_string(rows) + " rows");
  }
}

}  // namespace

void moe_dispatch(const float* x, i64 T, i64 M, const std::int32_t* token, const std::int32_t* dest,
                  const float* w, i64 P, i64 rows, float* buf) {
  check_pairs(T, token, dest, P, rows);
  std::vector<std::int32_t> writer(static_cast<size_t>(rows), -1);
  for (i64 p = 0; p < P; ++p) {
    const std::int32_t d = dest[p];
    if (d < 0) continue;
    if (writer[static_cast<size_t>(d)] >= 0)
      throw KernelError("moe_dispatch: pairs " + std::to_string(writer[static_cast<size_t>(d)]) + " and " +
                        std::to_string(p) + " both target buffer row " + std::to_string(d));
    writer[static_cast<size_t>(d)] = static_cast<std::int32_t>(p);
  }
  // Row-parallel: each buffer row has one writer (a pair or the zero fill).
  const int threads = threads_for(rows * M);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (i64 r = 0; r < rows; ++r) {
    float* dst = buf + r * M;
    const std::int32_t p = writer[static_cast<size_t>(r)];
    if (p < 0) {
      std::memset(dst, 0, sizeof(float) * static_cast<size_t>(M));
      continue;
    }
    const float* src = x + static_cast<i64>(token[p]) * M;
    if (w) {
      const float s = w[p];
#pragma omp simd
      for (i64 c = 0; c < M; ++c) dst[c] = s * src[c];
    } else {
      std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(M));
    }
  }
  (void)threads;
}

void moe_combine(const float* buf, i64 rows, i64 M, const std::int32_t* token, const std::int32_t* dest,
                 const float* w, i64 P, i64 T, float* y) {
  check_pairs(T, token, dest, P, rows);
  // Bucket the pairs by token (a stable counting sort; free when already token-major).
  std::vector<i64> start(static_cast<size_t>(T + 1), 0);
  for (i64 p = 0; p < P; ++p) ++start[static_cast<size_t>(token[p]) + 1];
  for (i64 t = 0; t < T; ++t) start[static_cast<size_t>(t + 1)] += start[static_cast<size_t>(t)];
  bool sorted = true;
  for (i64 p = 1; p < P && sorted; ++p) sorted = token[p] >= token[p - 1];
  std::vector<std::int32_t> order;
  if (!sorted) {
    order.resize(static_cast<size_t>(P));
    std::vector<i64> fill(start.begin(), start.end() - 1);
    for (i64 p = 0; p < P; ++p) order[static_cast<size_t>(fill[static_cast<size_t>(token[p])]++)] = static_cast<std::int32_t>(p);
  }
  const int threads = threads_for(std::max(P, T) * M);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (i64 t = 0; t < T; ++t) {
    float* dst = y + t * M;
    std::memset(dst, 0, sizeof(float) * static_cast<size_t>(M));
    for (i64 q = start[static_cast<size_t>(t)]; q < start[static_cast<size_t>(t + 1)]; ++q) {
      const i64 p = sorted ? q : order[static_cast<size_t>(q)];
      const std::int32_t d = dest[p];
      if (d < 0) continue;
      const float s = w ? w[p] : 1.0f;
      const float* src = buf + static_cast<i64>(d) * M;
#pragma omp simd
      for (i64 c = 0; c < M; ++c) dst[c] += s * src[c];
    }
  }
  (void)threads;
}

void moe_pair_dot(const float* a, i64 T, const float* b, i64 rows, i64 M, const std::int32_t* token,
                  const std::int32_t* dest, i64 P, float* dw) {
  check_pairs(T, token, dest, P, rows);
  const int threads = threads_for(P * M);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (i64 p = 0; p < P; ++p) {
    const std::int32_t d = dest[p];
    if (d < 0) {
      dw[p] = 0.0f;
      continue;
    }
    const float* u = a + static_cast<i64>(token[p]) * M;
    const float* v = b + static_cast<i64>(d) * M;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (i64 c = 0; c < M; ++c) s += static_cast<double>(u[c]) * v[c];
    dw[p] = static_cast<float>(s);
  }
  (void)threads;
}

}  // namespace polymoe
