// Index-based MoE dispatch and combine (Tutel/MegaBlocks style), the adjoint
// pair that replaces the one-hot [tokens, experts, capacity] einsums.
//
// A routing is a list of P (token, destination-row) pairs: pair p sends token
// row token[p] of x [T, M] to row dest[p] of the expert buffer [rows, M]
// (rows = experts * capacity, row = expert * capacity + slot), or is dropped
// when dest[p] < 0. Destinations are unique among kept pairs.
#pragma once

#include "common.h"

namespace polymoe {

/**
 * buf[dest[p]] = w[p] * x[token[p]] for kept pairs (w null: 1); every row no
 * pair writes is zeroed. x [T, M], buf [rows, M].
 * Throws KernelError for a token outside [0, T), a dest >= rows, or a dest used twice.
 */
void moe_dispatch(const float* x, i64 T, i64 M, const std::int32_t* token, const std::int32_t* dest,
                  const float* w, i64 P, i64 rows, float* buf);

/**
 * y[t] = sum over kept pairs with token[p] = t of w[p] * buf[dest[p]] (w null: 1).
 * buf [rows, M], y [T, M]. Parallel over tokens (pairs bucketed by token first
 * unless already token-major), so the summation order is the pair order.
 */
void moe_combine(const float* buf, i64 rows, i64 M, const std::int32_t* token, const std::int32_t* dest,
                 const float* w, i64 P, i64 T, float* y);

/** dw[p] = <a[token[p]], b[dest[p]]> for kept pairs, 0 for dropped: a [T, M], b [rows, M]. */
void moe_pair_dot(const float* a, i64 T, const float* b, i64 rows, i64 M, const std::int32_t* token,
                  const std::int32_t* dest, i64 P, float* dw);

}  // namespace polymoe
