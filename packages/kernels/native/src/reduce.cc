#include <algorithm>

#include "shape_ops.h"

namespace polymoe {
namespace {

/** Contiguous reduction of n values. Sums accumulate in double. */
inline float reduce_row(RedOp op, const float* x, i64 n) {
  switch (op) {
    case RedOp::Sum:
    case RedOp::Mean: {
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (i64 i = 0; i < n; ++i) s += x[i];
      return op == RedOp::Mean ? static_cast<float>(s / static_cast<double>(n)) : static_cast<float>(s);
    }
    case RedOp::Prod: {
      double p = 1.0;
      for (i64 i = 0; i < n; ++i) p *= x[i];
      return static_cast<float>(p);
    }
    case RedOp::Max: {
      float m = -std::numeric_limits<float>::infinity();
      bool nan = false;
#pragma omp simd reduction(max : m) reduction(| : nan)
      for (i64 i = 0; i < n; ++i) {
        m = std::max(m, x[i]);
        nan |= x[i] != x[i];
      }
      return nan ? std::numeric_limits<float>::quiet_NaN() : m;
    }
    case RedOp::Min: {
      float m = std::numeric_limits<float>::infinity();
      bool nan = false;
#pragma omp simd reduction(min : m) reduction(| : nan)
      for (i64 i = 0; i < n; ++i) {
        m = std::min(m, x[i]);
        nan |= x[i] != x[i];
      }
      return nan ? std::numeric_limits<float>::quiet_NaN() : m;
    }
  }
  return 0.0f;
}

/** out[o, i] = reduce_r x[o, r, i] for i in [i0, i1): strided rows, vectorised along i. */
void reduce_middle(RedOp op, const float* x, i64 R, i64 I, float* out, i64 o, i64 i0, i64 i1) {
  const float* base = x + o * R * I;
  const i64 w = i1 - i0;
  float* dst = out + o * I + i0;
  if (op == RedOp::Sum || op == RedOp::Mean || op == RedOp::Prod) {
    std::vector<double> acc(static_cast<size_t>(w), op == RedOp::Prod ? 1.0 : 0.0);
    double* a = acc.data();
    for (i64 r = 0; r < R; ++r) {
      const float* row = base + r * I + i0;
      if (op == RedOp::Prod) {
#pragma omp simd
        for (i64 j = 0; j < w; ++j) a[j] *= row[j];
      } else {
#pragma omp simd
        for (i64 j = 0; j < w; ++j) a[j] += row[j];
      }
    }
    const double scale = op == RedOp::Mean ? 1.0 / static_cast<double>(R) : 1.0;
    for (i64 j = 0; j < w; ++j) dst[j] = static_cast<float>(a[j] * scale);
    return;
  }
  const bool is_max = op == RedOp::Max;
  const float init = is_max ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
  for (i64 j = 0; j < w; ++j) dst[j] = init;
  for (i64 r = 0; r < R; ++r) {
    const float* row = base + r * I + i0;
    for (i64 j = 0; j < w; ++j) {
      const float v = row[j], m = dst[j];
      // NaN-propagating, like the tfjs cpu backend.
      dst[j] = (v != v || m != m) ? v + m : (is_max ? (v > m ? v : m) : (v < m ? v : m));
    }
  }
}

}  // namespace

void reduce(RedOp op, const float* x, const std::vector<i64>& shape, const std::vector<i64>& axes, float* out) {
  const size_t r = shape.size();
  std::vector<bool> red(r, false);
  for (i64 a : axes) red[static_cast<size_t>(a)] = true;
  const i64 n_out = [&] {
    i64 p = 1;
    for (size_t d = 0; d < r; ++d)
      if (!red[d]) p *= shape[d];
    return p;
  }();
  if (n_out == 0) return;
  // Collapse into alternating groups of kept / reduced dims (size-1 dims vanish).
  std::vector<i64> dims;
  std::vector<bool> is_red;
  for (size_t d = 0; d < r; ++d) {
    if (shape[d] == 1) continue;
    if (!dims.empty() && is_red.back() == red[d]) dims.back() *= shape[d];
    else {
      dims.push_back(shape[d]);
      is_red.push_back(red[d]);
    }
  }
  i64 R = 1;
  for (size_t g = 0; g < dims.size(); ++g)
    if (is_red[g]) R *= dims[g];
  bool any_reduced = false;
  for (size_t g = 0; g < dims.size(); ++g) any_reduced = any_reduced || is_red[g];
  if (dims.empty() || !any_reduced) {  // only size-1 dims are reduced: a copy
    std::memcpy(out, x, sizeof(float) * static_cast<size_t>(n_out));
    return;
  }
  if (R == 0) {  // empty reduction: the op's identity (mean of nothing is NaN)
    float v = 0.0f;
    if (op == RedOp::Prod) v = 1.0f;
    if (op == RedOp::Mean) v = std::numeric_limits<float>::quiet_NaN();
    if (op == RedOp::Max) v = -std::numeric_limits<float>::infinity();
    if (op == RedOp::Min) v = std::numeric_limits<float>::infinity();
    for (i64 i = 0; i < n_out; ++i) out[i] = v;
    return;
  }
  // Patterns handled directly: [O?][R][I?]. Anything else is first transposed
  // so the reduced dims are innermost.
  const size_t g = dims.size();
  i64 O = 1, I = 1;
  bool direct = false;
  if (g == 1) direct = true;  // all reduced
  else if (g == 2) {
    direct = true;
    if (is_red[0]) I = dims[1];
    else O = dims[0];
  } else if (g == 3 && is_red[1]) {
    direct = true;
    O = dims[0];
    I = dims[2];
  }
  if (!direct) {
    std::vector<i64> perm, tshape;
    for (size_t d = 0; d < r; ++d)
      if (!red[d]) perm.push_back(static_cast<i64>(d));
    for (size_t d = 0; d < r; ++d)
      if (red[d]) perm.push_back(static_cast<i64>(d));
    std::vector<float> tmp(static_cast<size_t>(n_out * R));
    transpose(x, shape, perm, tmp.data());
    O = n_out;
    I = 1;
    const int threads = threads_for(O * R);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (i64 o = 0; o < O; ++o) out[o] = reduce_row(op, tmp.data() + o * R, R);
    (void)threads;
    return;
  }
  if (I == 1) {
    const int threads = threads_for(O * R);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (i64 o = 0; o < O; ++o) out[o] = reduce_row(op, x + o * R, R);
    (void)threads;
    return;
  }
  // Strided reduction: split the work over (o, column block) pairs.
  const i64 block = std::max<i64>(64, I / std::max(1, num_threads()));
  const i64 nblk = (I + block - 1) / block;
  const int threads = threads_for(O * R * I);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) collapse(2)
#endif
  for (i64 o = 0; o < O; ++o)
    for (i64 bk = 0; bk < nblk; ++bk) reduce_middle(op, x, R, I, out, o, bk * block, std::min(I, (bk + 1) * block));
  (void)threads;
}

}  // namespace polymoe
