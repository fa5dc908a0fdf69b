// Grouped expert matmuls over row segments of an expert buffer.
//
// A segment is a run of buffer rows that one expert processes: rows
// [start, start + rows) of x [rows_total, K] go through expert `expert`'s
// weight w[expert] ([K, N], or [N, K] stored transposed). A capacity-padded
// buffer [E, C, K] has one segment per expert (its filled slots); a dropless,
// unpadded buffer has the experts' segments back to back; under expert
// parallelism a local buffer has one segment per (expert, source rank).
#pragma once

#include "common.h"

namespace polymoe {

struct Segment {
  i64 start;
  i64 rows;
  i64 expert;
};

/**
 * y[r] = x[r] op(w[e]) + b[e] for every row r of a segment of expert e;
 * rows no segment covers are zero. x [rows, K]; w [E, K, N] (trans_w: [E, N, K]);
 * b [E, N] or null; y [rows, N]. Segments must not overlap.
 * Throws KernelError for a segment outside the buffer, an unknown expert or overlap.
 */
void grouped_matmul(const float* x, const float* w, const float* b, const Segment* seg, i64 nseg, i64 rows, i64 E,
                    i64 K, i64 N, bool trans_w, float* y);

/**
 * dw[e] = sum over segments of expert e of a_s^T g_s ([Ka, Ng]); zero for an
 * expert without rows. db[e] (when not null) = the sum of g's rows of expert e.
 * a [rows, Ka], g [rows, Ng], dw [E, Ka, Ng], db [E, Ng].
 */
void grouped_matmul_grad_w(const float* a, const float* g, const Segment* seg, i64 nseg, i64 rows, i64 E, i64 Ka,
                           i64 Ng, float* dw, float* db);

}  // namespace polymoe
