// BLAS back ends for the native kernels: OpenBLAS (always) and oneDNN's sgemm
// (when the addon was built with it). Prototypes are declared here rather than
// taken from a distribution's cblas.h, whose name and location vary.
#pragma once

#include <string>

#include "common.h"

namespace polymoe {

enum class Blas { OpenBLAS = 0, OneDNN = 1 };

bool have_onednn();
Blas current_blas();
/** Throws KernelError if the requested back end was not compiled in. */
void set_blas(Blas which);
std::string blas_name(Blas which);
std::string blas_config();

/**
 * C[M,N] = op(A) op(B), row-major, where op(A) is [M,K] (A stored [K,M] when
 * trans_a) and op(B) is [K,N] (B stored [N,K] when trans_b). C is overwritten.
 * Runs with the process thread budget, or single-threaded inside a parallel
 * region (OpenBLAS/oneDNN detect that themselves).
 */
void sgemm(bool trans_a, bool trans_b, i64 M, i64 N, i64 K, const float* A, const float* B, float* C,
           float beta = 0.0f);

/**
 * Batched C = op(A) op(B) with NumPy broadcasting of the batch dimensions.
 * a_batch, b_batch: batch shapes of A and B (any ranks); out_batch: their
 * broadcast shape (the caller computed and validated it).
 */
void batch_matmul(const float* A, const std::vector<i64>& a_batch, const float* B,
                  const std::vector<i64>& b_batch, const std::vector<i64>& out_batch, i64 M, i64 N,
                  i64 K, bool trans_a, bool trans_b, float* C);

}  // namespace polymoe
