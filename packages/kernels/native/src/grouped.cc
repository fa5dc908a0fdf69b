// Grouped expert matmuls (MegaBlocks-style): every expert multiplies only the
// rows routed to it, so an expert buffer padded to a capacity — or the
// unpadded one of dropless routing — costs what its tokens cost, not what its
// capacity costs. Task-level routing sends a batch's tokens to a few experts
// out of many; a dense batched matmul over [experts, capacity, d] would spend
// most of its time on empty rows.
#include "grouped.h"

#include <algorithm>

#include "blas.h"

namespace polymoe {
namespace {

/** Validates segments against the buffer and the expert count; returns the largest segment. */
i64 check_segments(const Segment* seg, i64 nseg, i64 rows, i64 E) {
  i64 largest = 0;
  for (i64 s = 0; s < nseg; ++s) {
    const Segment& g = seg[s];
    if (g.start < 0 || g.rows < 0 || g.start + g.rows > rows)
      throw KernelError("grouped matmul: segment " + std::to_string(s) + " covers rows [" + std::to_string(g.start) +
                        ", " + std::to_string(g.start + g.rows) + ") outside the buffer's " + std::to_string(rows) +
                        " rows");
    if (g.expert < 0 || g.expert >= E)
      throw KernelError("grouped matmul: segment " + std::to_string(s) + " names expert " +
                        std::to_string(g.expert) + ", not in [0, " + std::to_string(E) + ")");
    largest = std::max<i64>(largest, g.rows);
  }
  return largest;
}

/**
 * Whether to run segments side by side (one thread each, single-threaded
 * BLAS inside the parallel region) rather than one after another with
 * threaded BLAS: worth it when there are several segments and each is too
 * small to keep all threads busy on its own.
 */
bool segments_in_parallel(i64 active, i64 macs_per_segment) {
  return num_threads() > 1 && active >= 2 && macs_per_segment < (i64{1} << 24);
}

}  // namespace

void grouped_matmul(const float* x, const float* w, const float* b, const Segment* seg, i64 nseg, i64 rows, i64 E,
                    i64 K, i64 N, bool trans_w, float* y) {
  check_segments(seg, nseg, rows, E);
  // Rows no segment covers are zero (sorted copy of the segments by start).
  std::vector<Segment> order(seg, seg + nseg);
  std::sort(order.begin(), order.end(), [](const Segment& a, const Segment& c) { return a.start < c.start; });
  i64 next = 0;
  for (const Segment& g : order) {
    if (g.rows == 0) continue;
    if (g.start < next)
      throw KernelError("grouped matmul: segments overlap at row " + std::to_string(g.start));
    if (g.start > next) std::memset(y + next * N, 0, sizeof(float) * static_cast<size_t>((g.start - next) * N));
    next = g.start + g.rows;
  }
  if (next < rows) std::memset(y + next * N, 0, sizeof(float) * static_cast<size_t>((rows - next) * N));
  if (K == 0) {
    for (const Segment& g : order) std::memset(y + g.start * N, 0, sizeof(float) * static_cast<size_t>(g.rows * N));
  }

  std::vector<Segment> active;
  i64 total = 0;
  for (const Segment& g : order)
    if (g.rows > 0) {
      active.push_back(g);
      total += g.rows;
    }
  const i64 n_active = static_cast<i64>(active.size());
  auto run = [&](const Segment& g) {
    const float* we = w + g.expert * K * N;
    float* yo = y + g.start * N;
    if (K > 0) sgemm(false, trans_w, g.rows, N, K, x + g.start * K, we, yo);
    if (b) {
      const float* be = b + g.expert * N;
      for (i64 r = 0; r < g.rows; ++r) {
        float* yr = yo + r * N;
#pragma omp simd
        for (i64 c = 0; c < N; ++c) yr[c] += be[c];
      }
    }
  };
  if (n_active > 0 && segments_in_parallel(n_active, total / n_active * K * N)) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
#endif
    for (i64 s = 0; s < n_active; ++s) run(active[static_cast<size_t>(s)]);
  } else {
    for (const Segment& g : active) run(g);
  }
}

void grouped_matmul_grad_w(const float* a, const float* g, const Segment* seg, i64 nseg, i64 rows, i64 E, i64 Ka,
                           i64 Ng, float* dw, float* db) {
  check_segments(seg, nseg, rows, E);
  // Segments of each expert, in row order (the summation order is fixed).
  std::vector<std::vector<Segment>> by_expert(static_cast<size_t>(E));
  for (i64 s = 0; s < nseg; ++s)
    if (seg[s].rows > 0) by_expert[static_cast<size_t>(seg[s].expert)].push_back(seg[s]);
  i64 busy = 0;
  i64 total = 0;
  for (auto& list : by_expert) {
    std::sort(list.begin(), list.end(), [](const Segment& x, const Segment& y) { return x.start < y.start; });
    if (!list.empty()) ++busy;
    for (const Segment& s : list) total += s.rows;
  }
  auto run = [&](i64 e) {
    float* dwe = dw + e * Ka * Ng;
    float* dbe = db ? db + e * Ng : nullptr;
    const auto& list = by_expert[static_cast<size_t>(e)];
    if (list.empty() || Ka == 0) {
      std::memset(dwe, 0, sizeof(float) * static_cast<size_t>(Ka * Ng));
    } else {
      bool first = true;
      for (const Segment& s : list) {
        // dw_e += a_s^T g_s: a_s [rows, Ka] read transposed, g_s [rows, Ng].
        sgemm(true, false, Ka, Ng, s.rows, a + s.start * Ka, g + s.start * Ng, dwe, first ? 0.0f : 1.0f);
        first = false;
      }
    }
    if (dbe) {
      std::fill(dbe, dbe + Ng, 0.0f);
      for (const Segment& s : list)
        for (i64 r = 0; r < s.rows; ++r) {
          const float* gr = g + (s.start + r) * Ng;
#pragma omp simd
          for (i64 c = 0; c < Ng; ++c) dbe[c] += gr[c];
        }
    }
  };
  if (busy > 0 && segments_in_parallel(busy, total / busy * Ka * Ng)) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
#endif
    for (i64 e = 0; e < E; ++e) run(e);
  } else {
    for (i64 e = 0; e < E; ++e) run(e);
  }
}

}  // namespace polymoe
