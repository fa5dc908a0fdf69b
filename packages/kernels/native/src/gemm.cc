#include <atomic>
#include <climits>

#include "blas.h"

#ifdef POLYMOE_HAVE_DNNL
#include <dnnl.h>
#endif

extern "C" {
// OpenBLAS's CBLAS entry points (LP64: blasint = int).
void cblas_sgemm(int order, int trans_a, int trans_b, int M, int N, int K, float alpha, const float* A,
                 int lda, const float* B, int ldb, float beta, float* C, int ldc);
void openblas_set_num_threads(int num_threads);
char* openblas_get_config(void);
}

namespace polymoe {
namespace {

constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

std::atomic<int> g_blas{static_cast<int>(Blas::OpenBLAS)};
std::atomic<int> g_threads{1};

void check_int(i64 v, const char* what) {
  if (v > INT_MAX) throw KernelError(std::string("matMul: ") + what + " exceeds the BLAS 32-bit limit");
}

}  // namespace

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1) n = 1;
  g_threads.store(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  openblas_set_num_threads(n);
}

bool have_onednn() {
#ifdef POLYMOE_HAVE_DNNL
  return true;
#else
  return false;
#endif
}

Blas current_blas() { return static_cast<Blas>(g_blas.load()); }

void set_blas(Blas which) {
  if (which == Blas::OneDNN && !have_onednn())
    throw KernelError("oneDNN was not found when the addon was built; install libdnnl-dev and rebuild "
                      "(pnpm --filter @polymoe/kernels build:native)");
  g_blas.store(static_cast<int>(which));
}

std::string blas_name(Blas which) { return which == Blas::OneDNN ? "onednn" : "openblas"; }

std::string blas_config() {
  std::string s = "OpenBLAS ";
  const char* c = openblas_get_config();
  s += c ? c : "?";
#ifdef POLYMOE_HAVE_DNNL
  const dnnl_version_t* v = dnnl_version();
  s += "; oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
       std::to_string(v->patch);
#endif
  return s;
}

void sgemm(bool trans_a, bool trans_b, i64 M, i64 N, i64 K, const float* A, const float* B, float* C,
           float beta) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0.0f) std::memset(C, 0, sizeof(float) * static_cast<size_t>(M * N));
    return;
  }
  const i64 lda = trans_a ? M : K;
  const i64 ldb = trans_b ? K : N;
#ifdef POLYMOE_HAVE_DNNL
  if (current_blas() == Blas::OneDNN) {
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb,
                                  beta, C, N);
    if (st != dnnl_success) throw KernelError("oneDNN sgemm failed with status " + std::to_string(st));
    return;
  }
#endif
  check_int(M, "M");
  check_int(N, "N");
  check_int(K, "K");
  cblas_sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), 1.0f, A, static_cast<int>(lda), B,
              static_cast<int>(ldb), beta, C, static_cast<int>(N));
}

void batch_matmul(const float* A, const std::vector<i64>& a_batch, const float* B,
                  const std::vector<i64>& b_batch, const std::vector<i64>& out_batch, i64 M, i64 N,
                  i64 K, bool trans_a, bool trans_b, float* C) {
  const size_t r = out_batch.size();
  const i64 batch = product(out_batch);
  if (batch == 0 || M == 0 || N == 0) return;
  // Validate before any parallel region: nothing may throw inside one.
  check_int(M, "M");
  check_int(N, "N");
  check_int(K, "K");

  // Batch offsets of A and B for every output batch index (NumPy broadcasting:
  // a size-1 dimension repeats; shapes are right-aligned).
  std::vector<i64> a_pad(r, 1), b_pad(r, 1);
  for (size_t i = 0; i < a_batch.size(); ++i) a_pad[r - a_batch.size() + i] = a_batch[i];
  for (size_t i = 0; i < b_batch.size(); ++i) b_pad[r - b_batch.size() + i] = b_batch[i];
  std::vector<i64> a_str = strides_of(a_pad), b_str = strides_of(b_pad);
  const i64 a_mat = M * K, b_mat = K * N, c_mat = M * N;
  std::vector<i64> a_off(static_cast<size_t>(batch)), b_off(static_cast<size_t>(batch));
  std::vector<i64> idx(r, 0);
  for (i64 bi = 0; bi < batch; ++bi) {
    i64 ao = 0, bo = 0;
    for (size_t d = 0; d < r; ++d) {
      if (a_pad[d] != 1) ao += idx[d] * a_str[d];
      if (b_pad[d] != 1) bo += idx[d] * b_str[d];
    }
    a_off[static_cast<size_t>(bi)] = ao * a_mat;
    b_off[static_cast<size_t>(bi)] = bo * b_mat;
    for (i64 d = static_cast<i64>(r) - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < out_batch[static_cast<size_t>(d)]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }

  // Small products in a batch: one matrix per thread with single-threaded BLAS
  // (attention's per-head products). Large ones: one at a time, BLAS threads.
  const i64 flops = M * N * K;
  const int threads = num_threads();
  if (batch >= 2 && threads > 1 && flops <= (i64{1} << 22)) {
    std::atomic<bool> failed{false};
    std::string message;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
    for (i64 bi = 0; bi < batch; ++bi) {
      try {
        sgemm(trans_a, trans_b, M, N, K, A + a_off[static_cast<size_t>(bi)],
              B + b_off[static_cast<size_t>(bi)], C + bi * c_mat);
      } catch (const std::exception& e) {
        if (!failed.exchange(true)) message = e.what();
      }
    }
    if (failed) throw KernelError(message);
    return;
  }
  for (i64 bi = 0; bi < batch; ++bi) {
    sgemm(trans_a, trans_b, M, N, K, A + a_off[static_cast<size_t>(bi)], B + b_off[static_cast<size_t>(bi)],
          C + bi * c_mat);
  }
}

}  // namespace polymoe
