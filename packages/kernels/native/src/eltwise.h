#pragma once

#include "common.h"

namespace polymoe {

/** Binary ops; NaN semantics follow the tfjs cpu backend (JS Math). */
enum class BinOp : int {
  Add = 0,
  Sub = 1,
  Mul = 2,
  Div = 3,
  Max = 4,
  Min = 5,
  SquaredDifference = 6,
  Prelu = 7,  // a < 0 ? b * a : a
};

/** Unary ops; alpha is the op's attribute (LeakyRelu slope, Step value). */
enum class UnOp : int {
  Relu = 0,
  Relu6 = 1,
  Elu = 2,
  LeakyRelu = 3,
  Sigmoid = 4,
  Tanh = 5,
  Exp = 6,
  Log = 7,
  Sqrt = 8,
  Rsqrt = 9,
  Neg = 10,
  Square = 11,
  Abs = 12,
  Reciprocal = 13,
  Step = 14,
  Gelu = 15,
  Erf = 16,
};

/**
 * out = a (op) b with NumPy broadcasting; a_shape and b_shape are right-aligned
 * against out_shape (validated by the caller). out may alias a or b when that
 * input already has out's shape.
 */
void binary(BinOp op, const float* a, const std::vector<i64>& a_shape, const float* b,
            const std::vector<i64>& b_shape, float* out, const std::vector<i64>& out_shape);

/** out[i] = op(x[i]); out may alias x. */
void unary(UnOp op, const float* x, float* out, i64 n, float alpha);

/** dx[i] = dy[i] * gelu'(x[i]) (exact GELU). */
void gelu_grad(const float* dy, const float* x, float* dx, i64 n);

/**
 * Inverted dropout with a counter-based mask: y[i] = x[i] / (1 - rate) when
 * element i is kept, else 0, where keeping depends only on (seed, i) — so the
 * backward pass recomputes the same mask (dx = dropout(dy) with the same seed)
 * instead of storing it, and the result does not depend on the thread count.
 * seed < 2^32.
 */
void dropout(const float* x, float* y, i64 n, float rate, std::uint64_t seed);

}  // namespace polymoe
