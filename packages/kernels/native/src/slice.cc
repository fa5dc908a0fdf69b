#include <algorithm>

#include "shape_ops.h"

namespace polymoe {
namespace {

/**
 * Copies a strided box: `rows` runs of `run` contiguous floats. Row r starts
 * at src_off(r) in the source and at dst_off(r) in the destination, where the
 * offsets come from unravelling r over `outer` dims with the given strides.
 */
struct Box {
  std::vector<i64> outer, src_stride, dst_stride;
  i64 run = 1, src_base = 0, dst_base = 0;
};

void copy_box(const Box& b, const float* src, float* dst) {
  i64 rows = product(b.outer);
  const size_t k = b.outer.size();
  const int threads = threads_for(rows * b.run);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
  for (i64 r = 0; r < rows; ++r) {
    i64 so = b.src_base, dof = b.dst_base, rem = r;
    for (i64 d = static_cast<i64>(k) - 1; d >= 0; --d) {
      const size_t u = static_cast<size_t>(d);
      const i64 id = rem % b.outer[u];
      rem /= b.outer[u];
      so += id * b.src_stride[u];
      dof += id * b.dst_stride[u];
    }
    std::memcpy(dst + dof, src + so, sizeof(float) * static_cast<size_t>(b.run));
  }
  (void)threads;
}

/**
 * Box over `box` (the copied extent per dim) inside a source of shape
 * src_shape at src_begin and a destination of shape dst_shape at dst_begin.
 * Trailing dims copied whole in both are folded into the contiguous run.
 */
Box make_box(const std::vector<i64>& box, const std::vector<i64>& src_shape, const std::vector<i64>& src_begin,
             const std::vector<i64>& dst_shape, const std::vector<i64>& dst_begin) {
  const size_t r = box.size();
  const std::vector<i64> ss = strides_of(src_shape), ds = strides_of(dst_shape);
  Box b;
  for (size_t d = 0; d < r; ++d) {
    b.src_base += src_begin[d] * ss[d];
    b.dst_base += dst_begin[d] * ds[d];
  }
  // The run covers the innermost dim plus any dims that are whole in both.
  i64 inner = static_cast<i64>(r) - 1;
  b.run = r == 0 ? 1 : box[static_cast<size_t>(inner)];
  while (inner > 0 && box[static_cast<size_t>(inner)] == src_shape[static_cast<size_t>(inner)] &&
         box[static_cast<size_t>(inner)] == dst_shape[static_cast<size_t>(inner)]) {
    --inner;
    b.run *= box[static_cast<size_t>(inner)];
  }
  for (i64 d = 0; d < inner; ++d) {
    const size_t u = static_cast<size_t>(d);
    b.outer.push_back(box[u]);
    b.src_stride.push_back(ss[u]);
    b.dst_stride.push_back(ds[u]);
  }
  return b;
}

}  // namespace

void slice(const float* x, const std::vector<i64>& shape, const std::vector<i64>& begin,
           const std::vector<i64>& size, float* out) {
  if (product(size) == 0) return;
  const std::vector<i64> zeros(shape.size(), 0);
  copy_box(make_box(size, shape, begin, size, zeros), x, out);
}

void pad(const float* x, const std::vector<i64>& shape, const std::vector<i64>& before,
         const std::vector<i64>& after, float value, float* out) {
  std::vector<i64> out_shape(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) out_shape[d] = before[d] + shape[d] + after[d];
  const i64 n = product(out_shape);
  const int threads = threads_for(n);
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) num_threads(threads)
#endif
  for (i64 i = 0; i < n; ++i) out[i] = value;
  (void)threads;
  if (product(shape) == 0) return;
  const std::vector<i64> zeros(shape.size(), 0);
  copy_box(make_box(shape, shape, zeros, out_shape, before), x, out);
}

}  // namespace polymoe
