#include "eltwise.h"

#include <algorithm>

namespace polymoe {
namespace {

template <BinOp OP>
inline float apply_bin(float a, float b) {
  if constexpr (OP == BinOp::Add) return a + b;
  if constexpr (OP == BinOp::Sub) return a - b;
  if constexpr (OP == BinOp::Mul) return a * b;
  if constexpr (OP == BinOp::Div) return a / b;
  if constexpr (OP == BinOp::Max) return (a != a || b != b) ? a + b : (a > b ? a : b);
  if constexpr (OP == BinOp::Min) return (a != a || b != b) ? a + b : (a < b ? a : b);
  if constexpr (OP == BinOp::SquaredDifference) return (a - b) * (a - b);
  if constexpr (OP == BinOp::Prelu) return a < 0.0f ? b * a : a;
  return 0.0f;
}

/** Inner run: out[j] = a[j*SA] op b[j*SB], SA/SB in {0,1} at compile time. */
template <BinOp OP, int SA, int SB>
inline void run(const float* __restrict a, const float* __restrict b, float* out, i64 n) {
#pragma omp simd
  for (i64 j = 0; j < n; ++j) out[j] = apply_bin<OP>(a[j * SA], b[j * SB]);
}

template <BinOp OP>
inline void run_dispatch(int sa, int sb, const float* a, const float* b, float* out, i64 n) {
  if (sa && sb) run<OP, 1, 1>(a, b, out, n);
  else if (sa) run<OP, 1, 0>(a, b, out, n);
  else if (sb) run<OP, 0, 1>(a, b, out, n);
  else run<OP, 0, 0>(a, b, out, n);
}

/**
 * Broadcast plan: the output viewed as collapsed dims where each input either
 * runs along (stride > 0) or repeats (stride 0). Consecutive dims with the same
 * pattern are merged, so the common cases end as one or two dims.
 */
struct Plan {
  std::vector<i64> dims, sa, sb;  // sizes and element strides per collapsed dim
};

Plan make_plan(const std::vector<i64>& a_shape, const std::vector<i64>& b_shape,
               const std::vector<i64>& out_shape) {
  const size_t r = out_shape.size();
  std::vector<i64> ap(r, 1), bp(r, 1);
  for (size_t i = 0; i < a_shape.size(); ++i) ap[r - a_shape.size() + i] = a_shape[i];
  for (size_t i = 0; i < b_shape.size(); ++i) bp[r - b_shape.size() + i] = b_shape[i];
  // Collapse dims of size 1 away and merge runs with equal broadcast pattern.
  std::vector<i64> dims;
  std::vector<int> pat;  // bit0: a runs, bit1: b runs
  for (size_t d = 0; d < r; ++d) {
    if (out_shape[d] == 1) continue;
    int p = (ap[d] != 1 ? 1 : 0) | (bp[d] != 1 ? 2 : 0);
    if (!dims.empty() && pat.back() == p) {
      dims.back() *= out_shape[d];
    } else {
      dims.push_back(out_shape[d]);
      pat.push_back(p);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    pat.push_back(3);
  }
  Plan plan;
  plan.dims = dims;
  plan.sa.assign(dims.size(), 0);
  plan.sb.assign(dims.size(), 0);
  i64 stride_a = 1, stride_b = 1;
  for (i64 d = static_cast<i64>(dims.size()) - 1; d >= 0; --d) {
    const size_t u = static_cast<size_t>(d);
    if (pat[u] & 1) {
      plan.sa[u] = stride_a;
      stride_a *= dims[u];
    }
    if (pat[u] & 2) {
      plan.sb[u] = stride_b;
      stride_b *= dims[u];
    }
  }
  return plan;
}

template <BinOp OP>
void binary_impl(const float* a, const float* b, float* out, const Plan& plan) {
  const size_t k = plan.dims.size();
  const i64 inner = plan.dims[k - 1];
  const int ia = plan.sa[k - 1] != 0, ib = plan.sb[k - 1] != 0;
  const i64 total = product(plan.dims);
  const int threads = threads_for(total);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int t = 0, nt = 1;
#endif
    // Each thread takes a contiguous slice [lo, hi) of the flat output.
    const i64 lo = total * t / nt, hi = total * (t + 1) / nt;
    i64 pos = lo;
    while (pos < hi) {
      i64 outer = pos / inner, j = pos % inner;
      i64 ao = 0, bo = 0, rem = outer;
      for (i64 d = static_cast<i64>(k) - 2; d >= 0; --d) {
        const size_t u = static_cast<size_t>(d);
        const i64 id = rem % plan.dims[u];
        rem /= plan.dims[u];
        ao += id * plan.sa[u];
        bo += id * plan.sb[u];
      }
      const i64 len = std::min(inner - j, hi - pos);
      run_dispatch<OP>(ia, ib, a + ao + j * ia, b + bo + j * ib, out + pos, len);
      pos += len;
    }
  }
  (void)threads;
}

template <UnOp OP>
inline float apply_un(float x, float alpha) {
  if constexpr (OP == UnOp::Relu) return x < 0.0f ? 0.0f : x;
  if constexpr (OP == UnOp::Relu6) return x != x ? x : (x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x));
  if constexpr (OP == UnOp::Elu) return x >= 0.0f ? x : std::expm1(x);
  if constexpr (OP == UnOp::LeakyRelu) return x < 0.0f ? alpha * x : x;
  if constexpr (OP == UnOp::Sigmoid) return vsigmoid(x);
  if constexpr (OP == UnOp::Tanh) return std::tanh(x);
  if constexpr (OP == UnOp::Exp) return vexp(x);
  if constexpr (OP == UnOp::Log) return std::log(x);
  if constexpr (OP == UnOp::Sqrt) return std::sqrt(x);
  if constexpr (OP == UnOp::Rsqrt) return 1.0f / std::sqrt(x);
  if constexpr (OP == UnOp::Neg) return -x;
  if constexpr (OP == UnOp::Square) return x * x;
  if constexpr (OP == UnOp::Abs) return std::fabs(x);
  if constexpr (OP == UnOp::Reciprocal) return 1.0f / x;
  if constexpr (OP == UnOp::Step) return x != x ? x : (x > 0.0f ? 1.0f : alpha);
  if constexpr (OP == UnOp::Gelu) return vgelu(x);
  if constexpr (OP == UnOp::Erf) return verf(x);
  return 0.0f;
}

template <UnOp OP>
void unary_impl(const float* x, float* out, i64 n, float alpha) {
  const int threads = threads_for(n * 4);
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) num_threads(threads)
#endif
  for (i64 i = 0; i < n; ++i) out[i] = apply_un<OP>(x[i], alpha);
  (void)threads;
}

}  // namespace

void binary(BinOp op, const float* a, const std::vector<i64>& a_shape, const float* b,
            const std::vector<i64>& b_shape, float* out, const std::vector<i64>& out_shape) {
  if (product(out_shape) == 0) return;
  const Plan plan = make_plan(a_shape, b_shape, out_shape);
  switch (op) {
    case BinOp::Add: return binary_impl<BinOp::Add>(a, b, out, plan);
    case BinOp::Sub: return binary_impl<BinOp::Sub>(a, b, out, plan);
    case BinOp::Mul: return binary_impl<BinOp::Mul>(a, b, out, plan);
    case BinOp::Div: return binary_impl<BinOp::Div>(a, b, out, plan);
    case BinOp::Max: return binary_impl<BinOp::Max>(a, b, out, plan);
    case BinOp::Min: return binary_impl<BinOp::Min>(a, b, out, plan);
    case BinOp::SquaredDifference: return binary_impl<BinOp::SquaredDifference>(a, b, out, plan);
    case BinOp::Prelu: return binary_impl<BinOp::Prelu>(a, b, out, plan);
  }
  throw KernelError("unknown binary op " + std::to_string(static_cast<int>(op)));
}

void unary(UnOp op, const float* x, float* out, i64 n, float alpha) {
  if (n == 0) return;
  switch (op) {
    case UnOp::Relu: return unary_impl<UnOp::Relu>(x, out, n, alpha);
    case UnOp::Relu6: return unary_impl<UnOp::Relu6>(x, out, n, alpha);
    case UnOp::Elu: return unary_impl<UnOp::Elu>(x, out, n, alpha);
    case UnOp::LeakyRelu: return unary_impl<UnOp::LeakyRelu>(x, out, n, alpha);
    case UnOp::Sigmoid: return unary_impl<UnOp::Sigmoid>(x, out, n, alpha);
    case UnOp::Tanh: return unary_impl<UnOp::Tanh>(x, out, n, alpha);
    case UnOp::Exp: return unary_impl<UnOp::Exp>(x, out, n, alpha);
    case UnOp::Log: return unary_impl<UnOp::Log>(x, out, n, alpha);
    case UnOp::Sqrt: return unary_impl<UnOp::Sqrt>(x, out, n, alpha);
    case UnOp::Rsqrt: return unary_impl<UnOp::Rsqrt>(x, out, n, alpha);
    case UnOp::Neg: return unary_impl<UnOp::Neg>(x, out, n, alpha);
    case UnOp::Square: return unary_impl<UnOp::Square>(x, out, n, alpha);
    case UnOp::Abs: return unary_impl<UnOp::Abs>(x, out, n, alpha);
    case UnOp::Reciprocal: return unary_impl<UnOp::Reciprocal>(x, out, n, alpha);
    case UnOp::Step: return unary_impl<UnOp::Step>(x, out, n, alpha);
    case UnOp::Gelu: return unary_impl<UnOp::Gelu>(x, out, n, alpha);
    case UnOp::Erf: return unary_impl<UnOp::Erf>(x, out, n, alpha);
  }
  throw KernelError("unknown unary op " + std::to_string(static_cast<int>(op)));
}

void gelu_grad(const float* dy, const float* x, float* dx, i64 n) {
  const int threads = threads_for(n * 8);
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) num_threads(threads)
#endif
  for (i64 i = 0; i < n; ++i) dx[i] = dy[i] * vgelu_grad(x[i]);
  (void)threads;
}

namespace {

/** SplitMix64's finaliser: a counter-based generator (element i's draw depends only on seed and i). */
inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

void dropout(const float* x, float* y, i64 n, float rate, std::uint64_t seed) {
  const double keep = 1.0 - static_cast<double>(rate);
  // Element i is kept when the high 32 bits of mix64(seed * 2^32 + i) fall below keep * 2^32.
  const std::uint64_t threshold = static_cast<std::uint64_t>(keep * 4294967296.0);
  const float scale = keep > 0 ? static_cast<float>(1.0 / keep) : 0.0f;
  const std::uint64_t base = seed << 32;
  const int threads = threads_for(n * 4);
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) num_threads(threads)
#endif
  for (i64 i = 0; i < n; ++i) {
    const std::uint64_t r = mix64(base + static_cast<std::uint64_t>(i)) >> 32;
    y[i] = r < threshold ? x[i] * scale : 0.0f;
  }
  (void)threads;
}

}  // namespace polymoe
