#include <algorithm>

#include "shape_ops.h"

namespace polymoe {

void gather(const float* params, i64 outer, i64 axis_dim, i64 inner, const std::int32_t* idx, i64 n_idx,
            float* out) {
  for (i64 i = 0; i < n_idx; ++i) {
    if (idx[i] < 0 || idx[i] >= axis_dim)
      throw KernelError("GatherV2: the index value " + std::to_string(idx[i]) + " at position " +
                        std::to_string(i) + " is not in [0, " + std::to_string(axis_dim - 1) + "]");
  }
  const i64 rows = outer * n_idx;
  const int threads = threads_for(rows * inner);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (i64 row = 0; row < rows; ++row) {
    const i64 o = row / n_idx, i = row % n_idx;
    std::memcpy(out + row * inner, params + (o * axis_dim + idx[i]) * inner,
                sizeof(float) * static_cast<size_t>(inner));
  }
  (void)threads;
}

void unsorted_segment_sum(const float* data, const std::int32_t* ids, i64 n, i64 inner, i64 num_segments,
                          float* out) {
  std::fill(out, out + num_segments * inner, 0.0f);
  // Columns are split between threads, so every output element has exactly
  // one writer and the summation order is the input order (deterministic).
  const int threads = inner >= 256 ? threads_for(n * inner) : 1;
  const i64 nt = std::max(1, threads);
#ifdef _OPENMP
#pragma omp parallel num_threads(static_cast<int>(nt))
#endif
  {
#ifdef _OPENMP
    const i64 t = omp_get_thread_num(), T = omp_get_num_threads();
#else
    const i64 t = 0, T = 1;
#endif
    const i64 c0 = inner * t / T, c1 = inner * (t + 1) / T;
    for (i64 r = 0; r < n; ++r) {
      const std::int32_t s = ids[r];
      if (s < 0 || s >= num_segments) continue;
      const float* src = data + r * inner;
      float* dst = out + static_cast<i64>(s) * inner;
#pragma omp simd
      for (i64 c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

void scatter_nd(const std::int32_t* indices, const float* updates, i64 n, i64 slice_size,
                const std::vector<i64>& index_dims, float* out) {
  const i64 slice_rank = static_cast<i64>(index_dims.size());
  const std::vector<i64> strides = strides_of(index_dims);
  const i64 num_slices = product(index_dims);
  std::fill(out, out + num_slices * slice_size, 0.0f);
  for (i64 i = 0; i < n; ++i) {
    i64 flat = 0;
    for (i64 j = 0; j < slice_rank; ++j) {
      const i64 v = indices[i * slice_rank + j];
      if (v < 0 || v >= index_dims[static_cast<size_t>(j)])
        throw KernelError("ScatterNd: indices[" + std::to_string(i) + "][" + std::to_string(j) + "] = " +
                          std::to_string(v) + " is not in [0, " +
                          std::to_string(index_dims[static_cast<size_t>(j)] - 1) + "]");
      flat += v * strides[static_cast<size_t>(j)];
    }
    const float* src = updates + i * slice_size;
    float* dst = out + flat * slice_size;
#pragma omp simd
    for (i64 c = 0; c < slice_size; ++c) dst[c] += src[c];
  }
}

}  // namespace polymoe
